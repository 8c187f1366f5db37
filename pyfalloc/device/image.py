"""The block device: a sparse image file, or an NBD export (nbd.py), read and written at
physical byte offsets.

Block 0 holds the superblock (geometry and the UUID that binds the image to its
metadata). Discard punches holes in an image file, so that the host really gets the space
back, and is NBD_CMD_TRIM on an export: what a thin-provisioned device does with a
discarded granule.
"""
import errno
import os
import struct

from pyfalloc.device.hostio import HostFile
from pyfalloc.errors import FormatError, FsError
from pyfalloc.units import format_size, is_pow2

MAGIC = b"PYFALLOC"
VERSION = 1
# magic, version, uuid, block size, granule, group size, block count
_SUPER = struct.Struct("<8sI16sIQQQ")
_COMMIT, _COMMIT_AT = struct.Struct("<Q"), 256     # inside block 0 even with 512-byte blocks
# who writes the volume: magic, 64 bytes of host name, boot id, cleared by the last user
_OWNER, _OWNER_AT = struct.Struct("<8s64s16s"), 320
OWNER_MAGIC = b"PYFAOWNR"



def check_geometry(size, block_size, granule, group_size):
    """Refuse a geometry a block device could not have, naming the offending value."""
    for name, value in (("block size", block_size), ("granule", granule), ("group size", group_size)):
        if not is_pow2(value):
            raise FsError(errno.EINVAL, f"{name} {value} is not a power of two")
    if not 512 <= block_size <= 65536:
        raise FsError(errno.EINVAL, f"block size {block_size} is outside 512..64K")
    if granule < block_size:
        raise FsError(errno.EINVAL, f"granule {format_size(granule)} is smaller than the block size")
    if group_size < block_size:
        raise FsError(errno.EINVAL, f"group size {format_size(group_size)} is smaller than the block size")
    if size % block_size:
        raise FsError(errno.EINVAL, f"size {size} is not a multiple of the block size {block_size}")
    if size < 16 * block_size:
        raise FsError(errno.EINVAL, f"size {size} is below 16 blocks")


def _uuid4():
    """A random (version 4) UUID's 16 bytes; the uuid module costs every process that
    starts the shim an import of platform."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40
    b[8] = b[8] & 0x3F | 0x80
    return bytes(b)


_NBD = ("nbd://", "nbd+unix://", "nbds://", "nbds+unix://")
_RBD = "rbd:"


def is_device_uri(location):
    """An NBD URI or an RBD spec rather than an image file."""
    return isinstance(location, str) and location.startswith(_NBD + (_RBD,))


def _backend(location, flags):
    readonly = flags & os.O_ACCMODE == os.O_RDONLY
    # the network backends imported when asked for: most processes open image files
    if isinstance(location, str) and location.startswith(_NBD):
        from pyfalloc.device.nbd import NbdFile
        return NbdFile(location, readonly)
    if isinstance(location, str) and location.startswith(_RBD):
        from pyfalloc.device.rbd import RbdFile
        return RbdFile(location, readonly)
    return HostFile(location, flags)


def host_id():
    """(host name, boot id): a host and a boot of it; a lock left by a crash of this host
    is this host's to take again."""
    name = os.uname().nodename.encode()[:64]
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = bytes.fromhex(f.read().strip().replace("-", ""))
    except (OSError, ValueError):
        boot = bytes(16)
    return name, boot


class Device:
    """The image through hostio.HostFile (whose recorder sees every write and flush), or an
    export through nbd.NbdFile."""

    def __init__(self, path, file, block_size, granule, group_size, nblocks, uuid):
        self.path = path
        self.file = file
        self.block_size = block_size
        self.granule = granule
        self.group_size = group_size
        self.nblocks = nblocks
        self.uuid = uuid

    @property
    def fd(self):
        return self.file.fd

    @property
    def size(self):
        return self.nblocks * self.block_size

    @property
    def local(self):
        """Whether the device is a host file (the shim's C paths read it directly)."""
        return not self.file.shared

    def identity(self):
        """What tells this device from every other on the machine (file: its device and
        inode; export: its URI)."""
        return self.file.identity()

    def access_mode(self):
        return self.file.mode()

    @classmethod
    def create(cls, path, size=None, block_size=4096, granule=None, group_size=128 << 20):
        """A new device: an image file of size bytes, or an export (size: at most the
        export's, default all of it; the whole export is discarded first, as mkfs.ext4
        does). granule None: the export's allocation unit, 1 MiB for a file."""
        if is_device_uri(path):
            f = _backend(path, os.O_RDWR)
            size = f.size() // block_size * block_size if size is None else size
            if size > f.size():
                f.close()
                raise FsError(errno.ENOSPC, f"{path} holds {f.size()} bytes, less than --size {size}")
        else:
            if size is None:
                raise FsError(errno.EINVAL, "an image file needs --size")
            f = None
        granule_probe = granule is None
        check_geometry(size, block_size, granule or block_size, group_size)
        if f is None:
            f = HostFile(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            f.truncate(size)
        else:
            f.discard(0, f.size())
        dev = cls(path, f, block_size, granule or 1 << 20, group_size, size // block_size, _uuid4())
        dev._write_super()
        if granule_probe and dev.file.shared:
            dev.granule = dev._probe_granule()
            dev._write_super()
        return dev

    def _write_super(self):
        header = _SUPER.pack(MAGIC, VERSION, self.uuid, self.block_size, self.granule, self.group_size,
                             self.nblocks)
        self.file.pwrite(header.ljust(self.block_size, b"\0"), 0)
        self.file.sync()

    def _probe_granule(self):
        """The device's discard granule, as its backend tells it (an NBD export's block
        size or allocation unit, an RBD image's object size): a power of two within the
        group size."""
        unit = max(self.block_size, self.file.granule_hint(self.group_size))
        g = self.block_size
        while g * 2 <= min(unit, self.group_size):
            g *= 2
        return g

    # ---- the volume's writer, across hosts ------------------------------------------------------
    def _claimant(self):
        """(host name, boot id) of the claim in block 0, or None."""
        magic, name, boot = _OWNER.unpack(self.file.pread(_OWNER.size, _OWNER_AT))
        return (name.rstrip(b"\0"), boot) if magic == OWNER_MAGIC else None

    def claim(self):
        """Take a shared device for this host: refused (EBUSY) while another host holds it.
        The claim sits in block 0, so every host that reaches the device sees it; the last
        user of this host releases it (release), `pyfalloc unlock` breaks it. An image file
        is this host's alone: nothing to claim."""
        if not self.file.shared:
            return
        holder, me = self._claimant(), host_id()
        if holder and holder[0] != me[0]:
            raise FsError(errno.EBUSY, f"{self.path} is in use by host {holder[0].decode(errors='replace')}"
                                       " (if that host is gone for good: pyfalloc unlock)")
        if holder != me:
            self.file.pwrite(_OWNER.pack(OWNER_MAGIC, *me), _OWNER_AT)
            self.file.sync()

    def release(self):
        if self.file.shared:
            self.file.pwrite(bytes(_OWNER.size), _OWNER_AT)
            self.file.sync()

    def break_claims(self):
        """pyfalloc unlock: the hosts whose claims were broken."""
        holder = self._claimant()
        if holder is None:
            return []
        self.file.pwrite(bytes(_OWNER.size), _OWNER_AT)
        self.file.sync()
        return [holder[0].decode(errors="replace")]

    @classmethod
    def open(cls, path, readonly=False):
        try:
            f = _backend(path, os.O_RDONLY if readonly else os.O_RDWR)
        except FileNotFoundError:
            raise FsError(errno.ENOENT, f"image {path} does not exist") from None
        except IsADirectoryError:
            raise FsError(errno.EISDIR, f"image {path} is a directory") from None
        head = f.pread(_SUPER.size, 0)
        if len(head) < _SUPER.size or head[:8] != MAGIC:
            f.close()
            raise FormatError(f"{path} is not a pyfalloc image (no superblock)")
        magic, version, uuid, bs, granule, group, nblocks = _SUPER.unpack(head)
        if version != VERSION:
            f.close()
            raise FormatError(f"{path}: unsupported image version {version}")
        if f.size() < nblocks * bs:
            f.close()
            raise FormatError(f"{path} is shorter than its superblock says ({nblocks} blocks)")
        return cls(path, f, bs, granule, group, nblocks, uuid)

    def close(self):
        self.file.close()

    def pread(self, length, pos):
        data = self.file.pread(length, pos)
        if len(data) != length:
            raise FsError(errno.EIO, f"short read at {pos}")
        return data

    def preadinto(self, view, pos):
        """Fill a writable memoryview from the image at pos, without a copy in between."""
        try:
            self.file.preadinto(view, pos)
        except OSError as e:
            raise FsError(e.errno, e.strerror) from None

    def pwritev(self, parts, pos):
        """Write buffers back to back at pos in as few calls as the kernel allows."""
        self.file.pwritev(parts, pos)

    def pwrite(self, data, pos):
        self.file.pwrite(data, pos)

    def copy(self, src, dst, length):
        """Copy bytes between two places of the device (in the kernel for an image file)."""
        self.file.copy(src, dst, length)

    def read_ahead(self, pos, length):
        self.file.read_ahead(pos, length)

    def zero(self, pos, length):
        """Make bytes read as zeros, releasing space where the device can (a hole in an
        image file, write-zeroes on an export)."""
        self.file.punch(pos, length)

    def discard(self, pos, length):
        """Let the device forget whole granules (the filesystem never reads free blocks)."""
        assert pos % self.granule == 0 and length % self.granule == 0 or pos + length == self.size
        self.file.discard(pos, length)

    def flush(self):
        self.file.sync()

    # the number of the last metadata commit, beside the superblock in block 0: written
    # after that commit is in the journal, so a journal that holds less lost commits
    def note_commit(self, seq):
        self.file.pwrite(_COMMIT.pack(seq), _COMMIT_AT)

    def noted_commit(self):
        return _COMMIT.unpack(self.file.pread(_COMMIT.size, _COMMIT_AT))[0]

    def host_allocated_bytes(self):
        """What the device holds: the image's host blocks, or what the export reports."""
        return self.file.allocated_bytes()
