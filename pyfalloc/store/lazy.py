"""The checkpoint's per-inode tables, read a bucket at a time when a process first looks
into them.

Reading every row of the checkpoint cost a process's first image call about 2.7 us per
file of the volume. The tables keyed by inode number (inodes, directories by their inode,
extents, attributes, the names of each inode) are written in buckets of 1 << SHIFT
consecutive inode numbers, each with its own CRC-32; a process maps the checkpoint and
reads a bucket the first time a key of it is looked up or changed. A bucket a process
never read is, in its tables, what the checkpoint holds (any change would have read it),
so the next checkpoint it writes copies that bucket's bytes without reading them.
"""
import marshal
import zlib
from _thread import allocate_lock

from pyfalloc.errors import FormatError

SHIFT = 8


def load_checked(path, blob, n, crc, part):
    """marshal's value of a part of a checkpoint, after its length and CRC-32 are checked."""
    if len(blob) != n or zlib.crc32(blob) != crc:
        raise FormatError(f"metadata {path} is corrupt ({part}: checksum mismatch)")
    try:
        return marshal.loads(blob)
    except (EOFError, ValueError, TypeError) as e:
        raise FormatError(f"metadata {path} is corrupt ({part}: {e})") from None


class Source:
    """A mapped checkpoint's buckets: index = {table: {bucket: (offset, length, crc, keys)}}."""

    def __init__(self, path, view, index):
        self.path, self.view, self.index = path, view, index
        self.lock = allocate_lock()         # made afresh after a fork (Tables.set_locks)
        self.whole = []                     # tables whose maps were read whole (Tables.settle)

    def raw(self, table, b):
        """(bytes as stored, their CRC-32, keys) of one bucket: copied into a new checkpoint."""
        off, n, crc, keys = self.index[table][b]
        return self.view[off:off + n], crc, keys

    def read(self, table, b):
        off, n, crc, _ = self.index[table][b]
        return load_checked(self.path, self.view[off:off + n], n, crc,
                            f"table {table!r}, inodes {b << SHIFT}..{((b + 1) << SHIFT) - 1}")


class LazyMap(dict):
    """A dict keyed by inode number whose keys still in the checkpoint are read, a bucket
    at a time, when first looked up, set or deleted. Iterating it reads every bucket; its
    length is known without reading any."""
    __slots__ = ("_src", "_table", "_pending", "_unread")

    def __init__(self):
        super().__init__()
        self._src = self._table = None
        self._pending = ()                  # buckets not read yet
        self._unread = 0                    # keys in them

    def attach(self, source, table):
        index = source.index.get(table, {})
        self._src, self._table = source, table
        self._pending = set(index)
        self._unread = sum(v[3] for v in index.values())
        if not index:
            source.whole.append(table)

    def _read(self, b):
        src = self._src
        with src.lock:                      # threads: one reads it, the others find it read
            if b in self._pending:
                dict.update(self, src.read(self._table, b))
                self._unread -= src.index[self._table][b][3]
                self._pending.discard(b)    # after the rows are in: a reader without the lock
                                            # that finds it gone finds them
                if not self._pending:
                    src.whole.append(self._table)

    def read_all(self):
        for b in sorted(self._pending):
            self._read(b)

    def unread(self):
        """(bucket, bytes, crc, keys) of every bucket still only in the checkpoint."""
        return [(b, *self._src.raw(self._table, b)) for b in sorted(self._pending)]

    # ---- one key: its bucket first. Each written out: a wrapper made once for all (a closure
    # taking *args) cost every look-up of a lazy map 50-60 ns more, about 40 of them in a
    # create+unlink ---------------------------------------------------------------------------------
    def get(self, key, default=None):
        if self._pending and key >> SHIFT in self._pending:
            self._read(key >> SHIFT)
        return dict.get(self, key, default)

    def __missing__(self, key):
        if self._pending and key >> SHIFT in self._pending:
            self._read(key >> SHIFT)
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def __contains__(self, key):
        if self._pending and key >> SHIFT in self._pending:
            self._read(key >> SHIFT)
        return dict.__contains__(self, key)

    def __setitem__(self, key, value):
        if self._pending and key >> SHIFT in self._pending:
            self._read(key >> SHIFT)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key):
        if self._pending and key >> SHIFT in self._pending:
            self._read(key >> SHIFT)
        dict.__delitem__(self, key)

    def pop(self, key, *default):
        if self._pending and key >> SHIFT in self._pending:
            self._read(key >> SHIFT)
        return dict.pop(self, key, *default)

    def setdefault(self, key, default=None):
        if self._pending and key >> SHIFT in self._pending:
            self._read(key >> SHIFT)
        return dict.setdefault(self, key, default)

    # ---- the whole map (iterating reads every bucket: see _whole below) ---------------------------
    def __len__(self):
        return dict.__len__(self) + self._unread

    def __eq__(self, other):
        self.read_all()
        if isinstance(other, LazyMap):
            other.read_all()
        return dict.__eq__(self, other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = None

    def _unsupported(self, *args, **kwargs):
        raise TypeError("not kept by a LazyMap: look keys up one at a time or iterate")

    update = clear = popitem = copy = __ior__ = __or__ = _unsupported


def _whole(name):
    """dict's method of that name, after reading every bucket."""
    method = getattr(dict, name)

    def whole(self):
        self.read_all()
        return method(self)
    whole.__name__ = name
    return whole


for _name in ("__iter__", "keys", "values", "items", "__repr__"):
    setattr(LazyMap, _name, _whole(_name))
