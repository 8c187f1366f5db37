"""renameat2 flags, the inode-flag and preallocation ioctls the kernel serves for any
filesystem, clone/dedupe refusals, FIONREAD and readahead, printed so a run in a host ext4
directory and a run on the image can be compared.

    python flags_ioctls.py DIR
"""
import ctypes
import errno
import fcntl
import os
import struct
import sys

from oracle import check, libc, show

d = sys.argv[1]


def renameat2(a, b, flags):
    return check(libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), ctypes.c_uint(flags)))


def put(name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def get(name):
    try:
        with open(os.path.join(d, name), "rb") as f:
            return f.read()
    except OSError as e:
        return errno.errorcode[e.errno]


put("a", b"A")
put("b", b"B")
a, b, c = (os.path.join(d, n) for n in "abc")
show("NOREPLACE onto an existing name", lambda: renameat2(a, b, 1))
show("NOREPLACE onto itself", lambda: renameat2(a, a, 1))
show("NOREPLACE onto a new name", lambda: (renameat2(a, c, 1), get("a"), get("c")))
show("EXCHANGE", lambda: (renameat2(b, c, 2), get("b"), get("c")))
show("EXCHANGE with a missing name", lambda: renameat2(b, a, 2))
show("NOREPLACE|EXCHANGE", lambda: renameat2(b, c, 3))
show("unknown flag bits", lambda: renameat2(b, c, 0xFFFFFFFF))
show("after", lambda: (get("a"), get("b"), get("c")))

fd = os.open(os.path.join(d, "f"), os.O_RDWR | os.O_CREAT)
os.write(fd, b"x" * 10000)
buf = bytearray(4)
show("FS_IOC_GETFLAGS", lambda: (fcntl.ioctl(fd, 0x80086601, buf), hex(struct.unpack("i", buf)[0]))[1])
show("FS_IOC_SETFLAGS unknown flag", lambda: fcntl.ioctl(fd, 0x40086602, struct.pack("i", 0x80000 | 0x800000)))
show("FICLONE", lambda: fcntl.ioctl(fd, 0x40049409, fd))
flock64 = struct.Struct("=hh4xqqiI16x")
show("RESVSP64 past EOF (KEEP_SIZE)", lambda: (fcntl.ioctl(fd, 0x4030582A, flock64.pack(0, 0, 8192, 65536, 0, 0)),
                                               os.fstat(fd).st_size, os.fstat(fd).st_blocks >= 8 * (65536 + 8192) // 4096)[1:])
show("ZERO_RANGE ioctl", lambda: (fcntl.ioctl(fd, 0x4030583F, flock64.pack(0, 0, 100, 50, 0, 0)),
                                  os.pread(fd, 4, 98))[1])
show("UNRESVSP64 from SEEK_CUR", lambda: (os.lseek(fd, 4096, 0),
                                          fcntl.ioctl(fd, 0x4030582B, flock64.pack(0, 1, 0, 4096, 0, 0)),
                                          os.pread(fd, 2, 4096))[2])
show("bad l_whence", lambda: fcntl.ioctl(fd, 0x4030582A, flock64.pack(0, 7, 0, 4096, 0, 0)))
os.lseek(fd, 9000, 0)
show("FIONREAD", lambda: (fcntl.ioctl(fd, 0x541B, buf), struct.unpack("i", buf)[0])[1])
show("readahead", lambda: check(libc.readahead(fd, ctypes.c_long(0), ctypes.c_size_t(4096))))
w = os.open(os.path.join(d, "f"), os.O_WRONLY)
show("readahead on a write-only descriptor", lambda: check(libc.readahead(w, ctypes.c_long(0), ctypes.c_size_t(4096))))
