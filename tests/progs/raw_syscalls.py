"""File system calls made through libc's syscall() by number, as stress-ng and fsstress make
some of them, printed so a run in a host directory and one on the image compare.

    python raw_syscalls.py DIR
"""
import ctypes
import errno
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
d = os.fsencode(sys.argv[1])
AT_FDCWD = -100
NR = {"openat": 257, "write": 1, "pread64": 17, "close": 3, "newfstatat": 262, "renameat2": 316,
      "unlinkat": 263, "mkdirat": 258, "openat2": 437, "statx": 332, "faccessat2": 439, "getcwd": 79,
      "ftruncate": 77, "lseek": 8, "fsync": 74, "readlinkat": 267, "setxattr": 188, "fgetxattr": 193,
      "listxattr": 194, "fremovexattr": 199}


def call(name, *args):
    r = libc.syscall(ctypes.c_long(NR[name]), *args)
    if r < 0:
        return errno.errorcode[ctypes.get_errno()]
    return r


def c_long(v):
    return ctypes.c_long(v)


def path(name):
    return ctypes.c_char_p(d + b"/" + name)


fd = call("openat", c_long(AT_FDCWD), path(b"f"), c_long(os.O_RDWR | os.O_CREAT | os.O_EXCL), c_long(0o644))
print("openat", fd >= 0)
print("write", call("write", c_long(fd), ctypes.c_char_p(b"hello raw"), c_long(9)))
buf = ctypes.create_string_buffer(16)
print("pread64", call("pread64", c_long(fd), buf, c_long(5), c_long(6)), buf.value)
print("lseek", call("lseek", c_long(fd), c_long(0), c_long(os.SEEK_END)))
print("ftruncate", call("ftruncate", c_long(fd), c_long(4)), os.path.getsize(d + b"/f"))
print("fsync", call("fsync", c_long(fd)))
st = ctypes.create_string_buffer(256)
print("newfstatat", call("newfstatat", c_long(AT_FDCWD), path(b"f"), st, c_long(0)),
      struct.unpack_from("q", st, 48)[0])              # st_size
print("statx", call("statx", c_long(AT_FDCWD), path(b"f"), c_long(0), c_long(0x7ff), st),
      struct.unpack_from("Q", st, 40)[0])              # stx_size
print("faccessat2", call("faccessat2", c_long(AT_FDCWD), path(b"f"), c_long(os.W_OK), c_long(0x200)))
print("mkdirat", call("mkdirat", c_long(AT_FDCWD), path(b"d"), c_long(0o755)))
print("renameat2 NOREPLACE onto d", call("renameat2", c_long(AT_FDCWD), path(b"f"), c_long(AT_FDCWD), path(b"d"),
                                         c_long(1)))
print("renameat2", call("renameat2", c_long(AT_FDCWD), path(b"f"), c_long(AT_FDCWD), path(b"g"), c_long(0)))
how = struct.pack("QQQ", os.O_RDONLY, 0, 0)
print("openat2", call("openat2", c_long(AT_FDCWD), path(b"g"), ctypes.c_char_p(how), c_long(24)) >= 0)
print("openat2 short struct", call("openat2", c_long(AT_FDCWD), path(b"g"), ctypes.c_char_p(how), c_long(16)))
print("openat2 mode without O_CREAT", call("openat2", c_long(AT_FDCWD), path(b"g"),
                                           ctypes.c_char_p(struct.pack("QQQ", 0, 0o644, 0)), c_long(24)))
os.symlink("d", d + b"/dl")
os.symlink("g", d + b"/gl")
NO_SYMLINKS = 0x04
for name, flags in ((b"dl/x", os.O_RDONLY | os.O_CREAT), (b"gl", os.O_RDONLY), (b"gl", os.O_PATH | os.O_NOFOLLOW),
                    (b"g", os.O_RDONLY)):
    r = call("openat2", c_long(AT_FDCWD), path(name), ctypes.c_char_p(struct.pack("QQQ", flags, 0, NO_SYMLINKS)),
             c_long(24))
    print("openat2 RESOLVE_NO_SYMLINKS", name, r if isinstance(r, str) else "opened")
print("readlinkat of a link", call("readlinkat", c_long(AT_FDCWD), path(b"gl"), buf, c_long(16)), buf.raw[:1])
os.unlink(d + b"/dl")
os.unlink(d + b"/gl")
print("readlinkat of a file", call("readlinkat", c_long(AT_FDCWD), path(b"g"), buf, c_long(16)))
print("setxattr", call("setxattr", path(b"g"), ctypes.c_char_p(b"user.raw"), ctypes.c_char_p(b"val"), c_long(3),
                       c_long(0)))
print("fgetxattr", call("fgetxattr", c_long(fd), ctypes.c_char_p(b"user.raw"), buf, c_long(16)), buf.value[:3])
print("listxattr", call("listxattr", path(b"g"), buf, c_long(16)), buf.raw[:9])
print("fremovexattr", call("fremovexattr", c_long(fd), ctypes.c_char_p(b"user.raw")),
      call("fremovexattr", c_long(fd), ctypes.c_char_p(b"user.raw")))
print("unlinkat dir without AT_REMOVEDIR", call("unlinkat", c_long(AT_FDCWD), path(b"d"), c_long(0)))
print("unlinkat", call("unlinkat", c_long(AT_FDCWD), path(b"g"), c_long(0)))
print("close", call("close", c_long(fd)), call("close", c_long(fd)))
print("left:", sorted(os.listdir(d)))
