"""The calling process's credentials: effective capabilities (capget(2)), fsuid, fsgid
and groups."""
import os

from pyfalloc.fs.perms import Cred

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_capget = 125
_capget_call = None


def _capget():
    """(effective, permitted) capability sets of this thread, as capget(2) tells them now;
    none when capget fails. A process the shim serves asks its C half (use_c)."""
    global _capget_call
    # ctypes at the first check that needs the sets as they are this instant: a process's
    # start reads them from /proc (current_cred) and most processes never get here
    import ctypes
    if _capget_call is None:
        _capget_call = ctypes.CDLL(None, use_errno=True).syscall
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()      # two of {effective, permitted, inheritable}
    if _capget_call(_SYS_capget, header, data) != 0:
        return 0, 0
    return data[0] | (data[3] << 32), data[1] | (data[4] << 32)


def use_c(capget):
    """capget() -> (effective, permitted) from the shim's C half, in place of ctypes."""
    global _capget
    _capget = capget


def effective_caps():
    return _capget()[0]


def real_caps():
    """The permitted set: what access(2) grants a real root (the kernel's override)."""
    return _capget()[1]


def capable(cap):
    return bool(effective_caps() >> cap & 1)


def _thread_status():
    """fsuid, fsgid and the effective capability set of the calling thread, from
    /proc/thread-self/status (its Uid and Gid lines end with the fs ids)."""
    fields = {}
    with open("/proc/thread-self/status", "rb") as f:
        for line in f:
            key, _, value = line.partition(b":")
            if key in (b"Uid", b"Gid", b"CapEff"):
                fields[key] = value.split()
    return int(fields[b"Uid"][3]), int(fields[b"Gid"][3]), int(fields[b"CapEff"][0], 16)


_cached = (None, None)


def current_cred():
    """The caller's credentials as the kernel checks files with them. Read again when the
    effective ids change (a process dropping root changes them, and with them its
    capabilities); capset alone, without a change of id, is not seen."""
    global _cached
    key = (os.getpid(), os.geteuid(), os.getegid())
    if _cached[0] != key:
        fsuid, fsgid, caps = _thread_status()
        _cached = (key, Cred(fsuid, fsgid, frozenset(os.getgroups()), caps))
    return _cached[1]
