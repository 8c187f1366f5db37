"""The host files a volume lives in (the image, the checkpoint, the journal), and the one
place their writes and syncs pass through.

A recorder, when one is set, sees every event in the order the host received it: what a
disk could hold after a power cut is the last synced state of each file plus any subset of
the writes since (tests/crashstates.py builds those states).
"""
import errno
import os

from pyfalloc.errors import FsError

recorder = None     # callable(event): ("write", path, pos, bytes) | ("punch", path, pos, len) |
                    # ("truncate", path, size) | ("sync", path) | ("rename", src, dst)


_PUNCH = 0x02 | 0x01                # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_fallocate = None


def _record(*event):
    if recorder is not None:
        recorder(event)


def _host_punch(fd, pos, length, path):
    """Deallocate on the host (punch a hole, keep the size); False where it cannot."""
    global _fallocate
    import ctypes       # at the first punch: most processes never punch, and ctypes costs their start
    if _fallocate is None:
        _fallocate = ctypes.CDLL(None, use_errno=True).fallocate
        _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if _fallocate(fd, _PUNCH, pos, length) == 0:
        return True
    e = ctypes.get_errno()
    if e not in (errno.EOPNOTSUPP, errno.ENOSYS):
        raise FsError(e, f"punching a hole in {path}")
    return False


class HostFile:
    shared = False                  # this host's file: no other host writes it

    def __init__(self, path, flags=os.O_RDWR, mode=0o644):
        self.path = os.fspath(path)
        self.fd = os.open(self.path, flags | os.O_CLOEXEC, mode)

    def size(self):
        return os.fstat(self.fd).st_size

    def identity(self):
        s = os.fstat(self.fd)
        return f"{s.st_dev:x}-{s.st_ino:x}"

    def allocated_bytes(self):
        return os.fstat(self.fd).st_blocks * 512

    def mode(self):
        return os.fstat(self.fd).st_mode

    def pread(self, length, pos):
        return os.pread(self.fd, length, pos)

    def preadinto(self, view, pos):
        """Fill a writable memoryview from pos; EIO when the file ends first."""
        while view:
            n = os.preadv(self.fd, [view], pos)
            if n == 0:
                raise OSError(errno.EIO, f"short read at {pos} in {self.path}")
            view = view[n:]
            pos += n

    def pwritev(self, parts, pos):
        """Write buffers back to back at pos in as few calls as the kernel allows."""
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        if recorder is not None:
            _record("write", self.path, pos, b"".join(views))
        while views:
            n = os.pwritev(self.fd, views, pos)
            pos += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]

    def pwrite(self, data, pos):
        self.pwritev([data], pos)

    def punch(self, pos, length):
        """Make [pos, pos+length) read as zeros, giving the host its space back where it
        can punch a hole, else writing zeros."""
        _record("punch", self.path, pos, length)
        if not _host_punch(self.fd, pos, length, self.path):
            zeros = memoryview(bytes(min(length, 1 << 20)))
            end = pos + length
            while pos < end:
                pos += os.pwrite(self.fd, zeros[:end - pos], pos)

    discard = punch                 # a host file forgets a range by a hole

    def copy(self, src, dst, length):
        """Copy bytes between two places of the file, in the kernel where it can (with a
        recorder, through pwrite, so that it sees the bytes written)."""
        while length and recorder is None:
            try:
                n = os.copy_file_range(self.fd, self.fd, length, src, dst)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                n = 0
            if n <= 0:
                break
            src, dst, length = src + n, dst + n, length - n
        if length:
            self.pwrite(self.pread(length, src), dst)

    def read_ahead(self, pos, length):
        """Start reading a range into the page cache (the host's is the volume's)."""
        os.posix_fadvise(self.fd, pos, length, os.POSIX_FADV_WILLNEED)

    def truncate(self, size):
        _record("truncate", self.path, size)
        os.ftruncate(self.fd, size)

    def sync(self):
        os.fdatasync(self.fd)
        _record("sync", self.path)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def replace(src, dst):
    """rename(src, dst), durable: the directory is synced after."""
    os.rename(src, dst)
    d = os.open(os.path.dirname(os.path.abspath(dst)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(d)
    finally:
        os.close(d)
    _record("rename", os.fspath(src), os.fspath(dst))
