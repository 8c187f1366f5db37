"""os-module-style calls on kernel file descriptors, through libc's syscall(2).

pyfalloc.fallocate2(fd, ...) issues syscall 486: under the LD_PRELOAD shim it reaches the
pyfalloc allocator; on a stock kernel it fails with ENOSYS, as the RFC was never merged.
fallocate3 (487) is the portable struct form; compat_fallocate2 calls the shim's i386 entry.
"""
import ctypes
import errno
import os

from pyfalloc.syscalls.abi import FALLOCATE_HOW_SIZE_VER0, FallocateHow, compat_words
from pyfalloc.uapi import NO_HINT, SYS_fallocate2, SYS_fallocate3

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


def fallocate3(fd, mode, offset, length, physical=NO_HINT, size=FALLOCATE_HOW_SIZE_VER0, tail=b"", reserved=0):
    """fallocate3(fd, &how, size): the arguments in a struct fallocate_how of `size` bytes
    (bytes past the struct are `tail`, zero-padded), as openat2 takes its open_how."""
    how = FallocateHow(offset & (2**64 - 1), length & (2**64 - 1), physical & NO_HINT, mode, reserved)
    raw = bytes(how) + tail
    buf = ctypes.create_string_buffer(raw + bytes(max(0, size - len(raw))), max(size, len(raw), 1))
    return _check(_syscall(ctypes.c_long(SYS_fallocate3), ctypes.c_int(fd), buf, ctypes.c_size_t(size)))


def compat_fallocate2(fd, mode, offset, length, physical=NO_HINT):
    """The RFC's i386 compat entry as libpyfalloc exports it, given the eight 32-bit halves;
    ENOSYS when the shim is not loaded."""
    try:
        entry = _libc.compat_sys_x86_fallocate2
    except AttributeError:
        raise OSError(errno.ENOSYS, "compat_sys_x86_fallocate2: libpyfalloc is not loaded") from None
    entry.restype = ctypes.c_long
    entry.argtypes = [ctypes.c_int, ctypes.c_int] + [ctypes.c_uint] * 6
    w = compat_words(fd, mode, offset, length, physical)
    ret = entry(ctypes.c_int(fd), ctypes.c_int(mode), *w[2:])
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return ret
