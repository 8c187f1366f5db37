"""The calling process's effective capabilities, read with capget(2)."""
import ctypes

CAP_FOWNER = 3
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_capget = 125


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def effective_caps():
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc.syscall(_SYS_capget, ctypes.byref(header), ctypes.byref(data)) != 0:
        return 0
    return data[0].effective | (data[1].effective << 32)


def capable(cap):
    return bool(effective_caps() >> cap & 1)
