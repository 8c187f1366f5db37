"""Shared mappings (MAP_SHARED) of files on the image.

Processes that map a file shared must see each other's stores, and read() and write() must
see them too; the kernel does it with one page cache. The image has none, so while a file is
mapped shared its bytes live in a host copy, INO.map in the volume's runtime directory
(tmpfs, memory): every shared mapping of the file, in any process, maps that copy; reads
through the volume read it; writes go to the image and then to it. Like the kernel's dirty
pages, what was stored through a mapping reaches the image later: at msync(MS_SYNC), fsync,
sync and syncfs, when the file's last mapping goes, and when the last user leaves the
volume. Only the blocks whose bytes differ from the image's are written, so holes and
unwritten extents stay as they are. A power cut loses the copy, as it loses dirty pages:
what no sync covered.

A mapping holds a shared lock on the copy through the open file it maps (the kernel keeps
that file, and its open-file-description lock, until the last mapping of it goes, in this
process or a forked one), so "no mapping left" is an exclusive lock granted on it. Copies are
made, written back and dropped under the inode's exclusive lock; the shared log counts them,
so a volume with none pays one read of that counter per call.
"""
import errno
import fcntl
import os

from pyfalloc.errors import FsError
from pyfalloc.store.shared import ofd_lock
from pyfalloc.units import ceil_div

CHUNK = 1 << 20             # bytes compared or copied at a time


class SharedMappings:
    def __init__(self, fs):
        self.fs = fs

    def any(self):
        """Whether any file of the volume may have a copy (a count in the shared log, too
        high at worst after a crash, never too low)."""
        return self.fs.meta.copies() > 0

    def _path(self, ino):
        return f"{self.fs.meta.log.shared_path}.d/{ino}.map"

    def _open(self, ino):
        """A descriptor of ino's copy, or None when it has none."""
        if not self.any():
            return None
        try:
            return os.open(self._path(ino), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None

    def has(self, ino):
        fd = self._open(ino)
        if fd is None:
            return False
        os.close(fd)
        return True

    # ---- mapping and unmapping -------------------------------------------------------------------
    def map(self, ino, writable):
        """A descriptor of ino's copy (made now if it has none) holding the shared lock that
        marks it mapped: the caller maps it and closes it, and the mapping keeps the lock.
        Open for writing only if the program's descriptor is, so mprotect cannot make a
        mapping of a read-only descriptor writable (the kernel's VM_MAYWRITE)."""
        fs = self.fs
        fs.check_writable()
        with fs.locks.exclusive(ino):
            fd = self._open(ino)
            if fd is None:
                fd = self._make(ino)
            if not writable:
                ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
                os.close(fd)
                fd = ro
            try:
                ofd_lock(fd, fcntl.F_RDLCK, 0)
            except BaseException:
                os.close(fd)
                raise
            return fd

    def _make(self, ino):
        fs, bs = self.fs, self.fs.bs
        inode = fs.inode(ino)
        size = inode.size
        path = self._path(ino)
        # counted before it exists, so no process that reads the counter misses it
        fs.meta.note_copy(ino, 1)
        fs.meta.runtime_dir()
        tmp = f"{path}.{os.getpid()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            # whom the file lets read or write it may read or write its copy (the runtime
            # directory is everyone's)
            os.fchmod(fd, 0o600 | inode.mode & 0o066)
            os.ftruncate(fd, size)
            for lblk, n, e in fs.extmap.segments(ino, 0, ceil_div(size, bs)):
                if e is None or e.unwritten:        # reads as zeros: the copy's hole
                    continue
                for at in range(lblk * bs, min(size, (lblk + n) * bs), CHUNK):
                    end = min(size, (lblk + n) * bs, at + CHUNK)
                    os.pwrite(fd, fs.dev.pread(end - at, e.pblk * bs + (at - lblk * bs)), at)
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        # the shim's answers about ino's blocks (reads and overwrites in C) stop holding
        fs.meta.note_copy(ino, 0)
        return fd

    def settle(self, ino, durable=False):
        """After a munmap or msync of ino: its copy written back, and dropped when no
        mapping of it is left; durable (MS_SYNC): then committed."""
        fs = self.fs
        if fs.readonly:
            return
        with fs.locks.exclusive(ino):
            fd = self._open(ino)
            if fd is None:
                return
            try:
                if ino in fs.t.inodes:
                    self._write_back(ino, fd)
                if ofd_lock(fd, fcntl.F_WRLCK, 0, wait=False):
                    self._drop(ino)
            finally:
                os.close(fd)
        if durable:
            fs.meta.commit()

    def _drop(self, ino):
        try:
            os.unlink(self._path(ino))
        except FileNotFoundError:
            pass
        self.fs.meta.note_copy(ino, -1)

    def leave(self):
        """The last user leaves the volume (no mapping can remain but its own, which end
        with it): every copy written back and dropped."""
        if not self.any():
            return
        for ino in self._copies():
            fd = self._open(ino)
            if fd is None:
                continue
            try:
                if ino in self.fs.t.inodes:
                    self._write_back(ino, fd)
            finally:
                os.close(fd)
            self._drop(ino)

    def _copies(self):
        try:
            names = os.listdir(f"{self.fs.meta.log.shared_path}.d")
        except FileNotFoundError:
            return []
        return sorted(int(n[:-4]) for n in names if n.endswith(".map") and n[:-4].isdigit())

    # ---- the copy as the file's bytes --------------------------------------------------------------
    def read_into(self, ino, offset, view):
        """Under ino's data lock: the bytes read from its copy, or None when it has none."""
        fd = self._open(ino)
        if fd is None:
            return None
        try:
            size = self.fs.t.inodes[ino][3]
            n = min(len(view), size - offset)
            if n <= 0:
                return 0
            got = os.preadv(fd, [view[:n]], offset)
            if got < n:                     # a copy cut short by a crash reads as zeros
                view[got:n] = bytes(n - got)
            return n
        finally:
            os.close(fd)

    def write_through(self, ino, offset, data):
        """Under ino's inode lock, after data went to the image: the copy too."""
        fd = self._open(ino)
        if fd is not None:
            try:
                os.pwrite(fd, data, offset)
            finally:
                os.close(fd)

    def sync(self, ino=None):
        """fsync (ino) or sync (every copy): what was stored through mappings, to the image."""
        if self.fs.readonly or not self.any():
            return
        for i in (self._copies() if ino is None else [ino]):
            with self.fs.locks.exclusive(i):
                fd = self._open(i)
                if fd is None:
                    continue
                try:
                    if i in self.fs.t.inodes:
                        self._write_back(i, fd)
                finally:
                    os.close(fd)

    def _write_back(self, ino, fd):
        """Under ino's inode lock: the blocks of the copy that differ from the image's, written."""
        fs, bs = self.fs, self.fs.bs
        size = fs.inode(ino).size
        for at in range(0, size, CHUNK):
            n = min(CHUNK, size - at)
            mine = os.pread(fd, n, at).ljust(n, b"\0")
            disk = bytearray(n)
            fs._read_mapped(ino, at, memoryview(disk))
            if mine == disk:
                continue
            i = 0
            while i < n:
                j = i
                while j < n and mine[j:j + bs] != disk[j:j + bs]:
                    j += bs
                if j == i:
                    i += bs
                    continue
                j = min(j, n)
                if fs._write(ino, at + i, memoryview(mine)[i:j]) < j - i:
                    raise FsError(errno.ENOSPC, "no space to write back a shared mapping's stores")
                i = j

    # ---- around changes of the mapping ----------------------------------------------------------------
    def changing(self, ino, start=None, end=None, write_back=False):
        """Around a change of ino's blocks (fallocate's modes, a move): write_back first when
        the change moves bytes within the file or to another; afterwards [start, end) of the
        copy (end None: to the end of the file) is read again from the image, and the copy
        follows the size. start None: the bytes did not change."""
        if not self.any():
            return _UNCHANGED               # no file has a copy: nothing to follow (most calls)
        return _Changing(self, ino, start, end, write_back)

    def reload(self, ino, start=None, end=None):
        fs = self.fs
        with fs.locks.exclusive(ino):
            fd = self._open(ino)
            if fd is None:
                return
            try:
                inode = fs.t.inodes.get(ino)
                if inode is None:
                    return
                size = inode[3]
                if start is not None:
                    end = size if end is None else min(end, size)
                    for at in range(start, end, CHUNK):
                        buf = bytearray(min(CHUNK, end - at))
                        fs._read_mapped(ino, at, memoryview(buf))
                        os.pwrite(fd, buf, at)
                os.ftruncate(fd, size)
            finally:
                os.close(fd)

    def resize(self, ino, size):
        """Under ino's inode lock, after a truncate."""
        fd = self._open(ino)
        if fd is not None:
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)


class _Unchanged:
    """changing()'s context when no file has a copy."""
    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_UNCHANGED = _Unchanged()


class _Changing:
    """SharedMappings.changing's context (a class: contextlib's import is a cost every
    process's start would pay)."""
    __slots__ = ("mappings", "ino", "start", "end", "write_back", "active")

    def __init__(self, mappings, ino, start, end, write_back):
        self.mappings, self.ino, self.start, self.end, self.write_back = mappings, ino, start, end, write_back
        self.active = False

    def __enter__(self):
        m = self.mappings
        self.active = m.any() and not m.fs.readonly
        if self.active and self.write_back:
            m.sync(self.ino)
        return self

    def __exit__(self, *exc):
        if self.active:
            self.mappings.reload(self.ino, self.start, self.end)
        return False
