"""What the oracle programs share: a line per call (its result, or the errno's name) that a
run on the host and a run on the image can be compared by, and the set-up they repeat."""
import ctypes
import errno
import fcntl
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def show(name, fn):
    try:
        r = fn()
        print(f"{name}: {r!r}")
    except OSError as e:
        print(f"{name}: {errno.errorcode[e.errno]}")


def check(r):
    """A libc call's result, or its errno raised as OSError."""
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def workdir(top, name):
    """A directory of the run's own under top, writable by anyone, made the working one."""
    d = os.path.join(top, name)
    os.mkdir(d)
    os.chmod(d, 0o777)
    os.chdir(d)
    return d


def set_immutable(fd, on):
    flags = struct.unpack("l", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0)))[0]
    flags = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", flags))


def as_nobody(fn):
    """fn() in a child that dropped to user and group 65534, its lines in order."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.setgid(65534)
        os.setuid(65534)
        fn()
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
