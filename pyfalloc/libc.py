"""os-module-style calls on kernel file descriptors, through libc's syscall(2).

pyfalloc.fallocate2(fd, ...) issues syscall 486: under the LD_PRELOAD shim it reaches the
pyfalloc allocator; on a stock kernel it fails with ENOSYS, as the RFC was never merged.
"""
import ctypes
import os

from .uapi import NO_HINT, SYS_fallocate2

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def fallocate2(fd, mode, offset, length, physical=NO_HINT):
    """fallocate2(fd, mode, offset, len, physical): fallocate with a physical placement hint."""
    return _check(_syscall(ctypes.c_long(SYS_fallocate2), ctypes.c_int(fd), ctypes.c_int(mode),
                           ctypes.c_int64(offset), ctypes.c_int64(length),
                           ctypes.c_uint64(physical & NO_HINT)))


def fallocate(fd, mode, offset, length):
    """fallocate(2) with a mode (the os module has only posix_fallocate)."""
    _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return _check(_libc.fallocate(fd, mode, offset, length))
