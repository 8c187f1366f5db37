"""The calling process's credentials: effective capabilities (capget(2)), fsuid, fsgid
and groups."""
import ctypes
import os

from pyfalloc.fs.perms import Cred

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_capget = 125


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def _capget():
    """(effective, permitted) capability sets of this process; none when capget fails."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc.syscall(_SYS_capget, ctypes.byref(header), ctypes.byref(data)) != 0:
        return 0, 0
    return data[0].effective | (data[1].effective << 32), data[0].permitted | (data[1].permitted << 32)


def effective_caps():
    return _capget()[0]


def real_caps():
    """The permitted set: what access(2) grants a real root (the kernel's override)."""
    return _capget()[1]


def capable(cap):
    return bool(effective_caps() >> cap & 1)


_libc.setfsuid.restype = _libc.setfsgid.restype = ctypes.c_int


_cached = (None, None)


def current_cred():
    """The caller's credentials as the kernel checks files with them: setfsuid(-1) and
    setfsgid(-1) change nothing and return the fsuid and fsgid. Read again when the
    effective ids change (a process dropping root changes them, and with them its
    capabilities); capset alone, without a change of id, is not seen."""
    global _cached
    key = (os.getpid(), os.geteuid(), os.getegid())
    if _cached[0] != key:
        _cached = (key, Cred(_libc.setfsuid(ctypes.c_uint32(0xFFFFFFFF)) & 0xFFFFFFFF,
                             _libc.setfsgid(ctypes.c_uint32(0xFFFFFFFF)) & 0xFFFFFFFF,
                             frozenset(os.getgroups()), effective_caps()))
    return _cached[1]
