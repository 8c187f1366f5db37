"""What survives a power cut: a checkpoint of every table and a journal of the commits
since it.

    IMAGE.meta          checkpoint, replaced by rename: header, the buckets of the tables
                        keyed by inode number (store/lazy.py), then a directory (marshal):
                        the other tables' rows, where each bucket is, the orphans and the
                        next inode number
    IMAGE.meta-journal  header naming the checkpoint it follows, then commit blocks

A commit block is [magic, payload length, CRC-32, epoch, sequence] + payload, the payload
being the change records of one commit. Recovery replays blocks in order and stops at the
first that is torn or belongs to another checkpoint: a commit is all there or not at all.
Commits are numbered; the checkpoint names the last one it holds, and the image's superblock
the last one made (device/image.py), so a journal that lost commits is noticed.
"""
import marshal
import mmap
import os
import struct
import zlib

from pyfalloc.device import hostio
from pyfalloc.collector import without_collector
from pyfalloc.errors import FormatError
from pyfalloc.store.lazy import Source, load_checked

CKPT_MAGIC = b"PYFAMETA"
JRNL_MAGIC = b"PYFAJRNL"
FORMAT = 5
# magic, format, uuid, epoch, nonce, last commit held, directory offset, length and CRC-32
_CKPT = struct.Struct("<8sI16sQQQQQI")
# magic, format, uuid, epoch, nonce
_JHEAD = struct.Struct("<8sI16sQQ")
JOURNAL_START = 4096
_BLOCK = struct.Struct("<IIIQQ")
BLOCK_MAGIC = 0x4A424C4B


def meta_path(image):
    return os.fspath(image) + ".meta"


def journal_path(image):
    return journal_of(meta_path(image))


def journal_of(meta):
    """The journal beside a checkpoint (IMAGE.meta, or the --meta PATH given)."""
    return os.fspath(meta) + "-journal"


def volume_files(image, meta=None):
    """The host files that together are a volume: copy all of them (after the last user
    has left, or after a sync) to copy the volume."""
    meta = meta_path(image) if meta is None else os.fspath(meta)
    return [os.fspath(image), meta, journal_of(meta)]


_LEN = struct.Struct("<I")


def frame(records):
    """One change, as it travels in the shared log and in commit blocks."""
    body = marshal.dumps(records)
    return _LEN.pack(len(body)) + body


def unframe(blob):
    """The changes of a run of frames, in order."""
    return [change for _, change in unframe_at(blob)]


def unframe_at(blob, base=0):
    """(offset, change) of each frame of a run that starts at offset base, in order."""
    pos, out = 0, []
    view = memoryview(blob)
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        out.append((base + pos, marshal.loads(view[pos + 4:pos + 4 + n])))
        pos += 4 + n
    return out


class Checkpoint:
    def __init__(self, uuid, epoch, nonce, seq, records=None, source=None, orphans=(), next_ino=1):
        self.uuid, self.epoch, self.nonce, self.seq = uuid, epoch, nonce, seq
        self.records, self.source, self.orphans, self.next_ino = records, source, orphans, next_ino


def write_checkpoint(meta, uuid, epoch, rows, seq=0, buckets=None, orphans=(), next_ino=1):
    """Write a new checkpoint durably (temp file, sync, rename), then start its journal.
    rows: the tables kept whole; buckets: {table: [(bucket, bytes, crc, keys)]}."""
    nonce = int.from_bytes(os.urandom(8), "little")
    parts, index, off = [], {}, _CKPT.size
    for table, items in (buckets or {}).items():
        where = index[table] = {}
        for b, blob, crc, keys in items:
            where[b] = (off, len(blob), crc, keys)
            parts.append(blob)
            off += len(blob)
    directory = marshal.dumps({"rows": rows, "index": index, "orphans": list(orphans), "next_ino": next_ino})
    head = _CKPT.pack(CKPT_MAGIC, FORMAT, uuid, epoch, nonce, seq, off, len(directory), zlib.crc32(directory))
    path = os.fspath(meta)
    tmp = path + ".new"
    f = hostio.HostFile(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        f.pwritev([head, b"".join(parts), directory], 0)
        f.sync()
    finally:
        f.close()
    hostio.replace(tmp, path)
    reset_journal(meta, uuid, epoch, nonce)
    return nonce


def reset_journal(meta, uuid, epoch, nonce):
    f = hostio.HostFile(journal_of(meta), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        f.truncate(0)
        f.pwrite(_JHEAD.pack(JRNL_MAGIC, FORMAT, uuid, epoch, nonce).ljust(JOURNAL_START, b"\0"), 0)
        f.sync()
    finally:
        f.close()


@without_collector
def read_checkpoint(meta, records=True):
    """The checkpoint: its directory checked and read, its buckets mapped to be read when
    first needed (each checked then); without records only its header (which checkpoint it
    is: what an opener compares with the shared log)."""
    path = os.fspath(meta)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FormatError(f"metadata {path} is missing (refusing to re-create it)") from None
    try:
        size = os.fstat(fd).st_size
        if size < _CKPT.size:
            raise FormatError(f"metadata {path} is truncated")
        # the mapping outlives the descriptor, and a later checkpoint replaces the file by
        # rename: what this process maps stays the checkpoint it loaded
        view = memoryview(mmap.mmap(fd, size if records else _CKPT.size, prot=mmap.PROT_READ))
    finally:
        os.close(fd)
    magic, fmt, uuid, epoch, nonce, seq, off, n, crc = _CKPT.unpack_from(view)
    if magic != CKPT_MAGIC:
        raise FormatError(f"{path} is not pyfalloc metadata")
    if fmt != FORMAT:
        raise FormatError(f"metadata {path} has format {fmt}, expected {FORMAT}")
    if not records:
        return Checkpoint(uuid, epoch, nonce, seq)
    d = load_checked(path, view[off:off + n], n, crc, "directory")
    try:
        return Checkpoint(uuid, epoch, nonce, seq, d["rows"], Source(path, view, d["index"]), d["orphans"],
                          d["next_ino"])
    except (KeyError, TypeError) as e:
        raise FormatError(f"metadata {path} is corrupt (directory: {e!r})") from None


def read_journal(meta, ckpt):
    """The changes committed after ckpt, the length of the journal's valid part (None: it
    follows another checkpoint, after a crash between the two, and holds nothing), the
    number of the last commit found, and whether nothing but zeros follows the valid part
    (the room a writer keeps ahead; anything else is a torn block, to be cut off)."""
    try:
        with open(journal_of(meta), "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        return [], None, ckpt.seq, False
    if len(blob) < _JHEAD.size:
        return [], None, ckpt.seq, False
    magic, fmt, uuid, epoch, nonce = _JHEAD.unpack_from(blob)
    if (magic, fmt, uuid, epoch, nonce) != (JRNL_MAGIC, FORMAT, ckpt.uuid, ckpt.epoch, ckpt.nonce):
        return [], None, ckpt.seq, False
    pos, changes, last = JOURNAL_START, [], ckpt.seq
    while pos + _BLOCK.size <= len(blob):
        magic, n, crc, epoch, seq = _BLOCK.unpack_from(blob, pos)
        payload = memoryview(blob)[pos + _BLOCK.size:pos + _BLOCK.size + n]
        if (magic != BLOCK_MAGIC or epoch != ckpt.epoch or seq != last + 1 or len(payload) != n
                or zlib.crc32(payload) != crc):
            break
        try:
            changes += unframe(payload)
        except (EOFError, ValueError, TypeError, struct.error):
            break
        pos += _BLOCK.size + n
        last = seq
    return changes, pos, last, not blob[pos:].strip(b"\0")


def block(payload, epoch, seq):
    return _BLOCK.pack(BLOCK_MAGIC, len(payload), zlib.crc32(payload), epoch, seq) + payload
