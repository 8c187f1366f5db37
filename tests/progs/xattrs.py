"""Extended attributes, printed so a run in a host directory and a run on the image can be
compared line by line: set, get, list and remove with their flags and errors, the namespace
rules for root and for a user who is not, immutable files, and cp and tar preserving them.

    python xattrs.py DIR
"""
import ctypes
import os
import subprocess
import sys

from oracle import as_nobody, check, libc, set_immutable, show, workdir

workdir(sys.argv[1], "xa")


def getxattr_size(path, name, size):
    """getxattr(2) with a buffer of size bytes: the length, or the errno raised."""
    buf = ctypes.create_string_buffer(max(size, 1))
    return check(libc.getxattr(path.encode(), name.encode(), buf if size else None, size))


with open("f", "w") as f:
    f.write("data")
os.chmod("f", 0o644)
os.mkdir("dir")
show("set user.a", lambda: os.setxattr("f", "user.a", b"one"))
show("get user.a", lambda: os.getxattr("f", "user.a"))
show("set user.b empty", lambda: os.setxattr("f", "user.b", b""))
show("get user.b", lambda: os.getxattr("f", "user.b"))
show("list", lambda: sorted(os.listxattr("f")))
show("create user.a again", lambda: os.setxattr("f", "user.a", b"x", os.XATTR_CREATE))
show("replace user.missing", lambda: os.setxattr("f", "user.missing", b"x", os.XATTR_REPLACE))
show("replace user.a", lambda: (os.setxattr("f", "user.a", b"two", os.XATTR_REPLACE), os.getxattr("f", "user.a")))
show("both flags", lambda: os.setxattr("f", "user.c", b"x", 3))
show("unknown flag", lambda: os.setxattr("f", "user.c", b"x", 4))
show("get missing", lambda: os.getxattr("f", "user.missing"))
show("remove missing", lambda: os.removexattr("f", "user.missing"))
show("length with size 0", lambda: getxattr_size("f", "user.a", 0))
show("size too small", lambda: getxattr_size("f", "user.a", 1))
show("empty name", lambda: os.setxattr("f", "", b"x"))
show("name of 256 bytes", lambda: os.setxattr("f", "user." + "n" * 251, b"x"))
show("name of 255 bytes", lambda: os.setxattr("f", "user." + "n" * 250, b"x"))
show("namespace only", lambda: os.setxattr("f", "user.", b"x"))
show("unknown namespace", lambda: os.setxattr("f", "bogus.x", b"x"))
show("get unknown namespace", lambda: os.getxattr("f", "bogus.x"))
show("value of 64 KiB + 1", lambda: os.setxattr("f", "user.big", b"v" * 65537))
show("value of 3000 bytes", lambda: len(os.getxattr("f", "user.a")) if os.setxattr("f", "user.a", b"v" * 3000)
     is None else None)
show("value of 5000 bytes (more than a block)", lambda: os.setxattr("f", "user.huge", b"v" * 5000))
show("remove user.b", lambda: os.removexattr("f", "user.b"))
show("set trusted.t", lambda: os.setxattr("f", "trusted.t", b"root's"))
show("set security.s", lambda: os.setxattr("f", "security.s", b"sec"))
show("list", lambda: sorted(os.listxattr("f")))
show("directory user.d", lambda: (os.setxattr("dir", "user.d", b"dd"), os.getxattr("dir", "user.d")))
fd = os.open("f", os.O_RDONLY)
show("fgetxattr", lambda: os.getxattr(fd, "trusted.t"))
show("flistxattr", lambda: sorted(os.listxattr(fd)))
show("fsetxattr on a read-only descriptor", lambda: os.setxattr(fd, "user.viafd", b"fd"))
show("fremovexattr", lambda: os.removexattr(fd, "user.viafd"))
set_immutable(fd, True)
show("set on an immutable file", lambda: os.setxattr("f", "user.z", b"z"))
show("get on an immutable file", lambda: os.getxattr("f", "user.a")[:3])
set_immutable(fd, False)
os.close(fd)
show("missing file", lambda: os.getxattr("nofile", "user.a"))
show("file/ (trailing slash)", lambda: os.listxattr("f/"))

# a user who is neither the owner nor root: trusted.* hidden, writes need write permission
os.mkdir("sticky")
os.chmod("sticky", 0o1777)


def nobody():
    show("nobody: list", lambda: sorted(os.listxattr("f")))
    show("nobody: get trusted.t", lambda: os.getxattr("f", "trusted.t"))
    show("nobody: get user.a", lambda: len(os.getxattr("f", "user.a")))
    show("nobody: set user.n on root's 0644 file", lambda: os.setxattr("f", "user.n", b"n"))
    show("nobody: set trusted.n", lambda: os.setxattr("f", "trusted.n", b"n"))
    show("nobody: set security.n", lambda: os.setxattr("f", "security.n", b"n"))
    show("nobody: set user.s on root's sticky directory", lambda: os.setxattr("sticky", "user.s", b"s"))
    with open("mine", "w") as f:
        f.write("nobody's")
    show("nobody: set user.m on a file of its own", lambda: os.setxattr("mine", "user.m", b"m"))


as_nobody(nobody)

# the tools keep them
r = subprocess.run(["cp", "--preserve=xattr", "f", "copy"], capture_output=True, text=True)
show("cp --preserve=xattr", lambda: (r.returncode, sorted((n, os.getxattr("copy", n)[:8]) for n in os.listxattr("copy"))))
os.mkdir("untar")
r = subprocess.run("tar --xattrs --xattrs-include='*' -cf x.tar f && tar --xattrs --xattrs-include='*' -xf x.tar -C untar",
                   shell=True, capture_output=True, text=True)
show("tar --xattrs", lambda: (r.returncode, sorted((n, os.getxattr("untar/f", n)[:8]) for n in os.listxattr("untar/f"))))
os.unlink("copy")
show("after unlink, entries", lambda: sorted(os.listdir(".")))

# attributes that fit in the inode take no block; more take one (st_blocks, du)
for name, sizes in (("user.a", (68, 69)), ("user.abcde", (64, 65)), ("trusted.x", (64,))):
    for n in sizes:
        with open(f"room{n}{name}", "w"):
            pass
        os.setxattr(f"room{n}{name}", name, b"v" * n)
        show(f"st_blocks with {name} of {n} bytes", lambda: os.stat(f"room{n}{name}").st_blocks)
with open("two", "w"):
    pass
os.setxattr("two", "user.a", b"v" * 30)
show("st_blocks with one 30-byte attribute", lambda: os.stat("two").st_blocks)
os.setxattr("two", "user.b", b"v" * 30)
show("st_blocks with two", lambda: os.stat("two").st_blocks)
os.removexattr("two", "user.b")
show("st_blocks with one again", lambda: os.stat("two").st_blocks)
