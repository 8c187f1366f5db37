"""Hard links, printed so a run in a host directory and a run on the image can be compared
line by line: link and linkat's errors in their order, link counts, data shared through
both names, unlink and rename among links, O_TMPFILE named by linkat(AT_EMPTY_PATH), and
the protected-hard-links rule for a user who does not own the file.

    python hardlinks.py DIR
"""
import os
import sys

from oracle import as_nobody, check, libc, set_immutable, show, workdir

workdir(sys.argv[1], "hl")
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000


def linkat(olddir, old, newdir, new, flags):
    return check(libc.linkat(olddir, old.encode(), newdir, new.encode(), flags))


def nlinks(*names):
    return [os.stat(n).st_nlink for n in names]


with open("a", "w") as f:
    f.write("hello")
os.mkdir("sub")
show("link a b", lambda: os.link("a", "b"))
show("nlink a b", lambda: nlinks("a", "b"))
show("same inode", lambda: os.stat("a").st_ino == os.stat("b").st_ino)
show("read b", lambda: open("b").read())
show("link a sub/c", lambda: os.link("a", "sub/c"))
show("nlink a, sub", lambda: nlinks("a", "sub"))
show("link a b again", lambda: os.link("a", "b"))
show("link missing x", lambda: os.link("missing", "x"))
show("link a into a missing directory", lambda: os.link("a", "nodir/x"))
show("link a to x/ (trailing slash)", lambda: os.link("a", "x/"))
show("link a/ (trailing slash) to x", lambda: os.link("a/", "x"))
show("link a to sub/.", lambda: os.link("a", "sub/."))
show("link a directory", lambda: os.link("sub", "sub2"))
show("linkat unknown flag", lambda: linkat(AT_FDCWD, "a", AT_FDCWD, "y", 0x2))
with open("b", "a") as f:
    f.write(" world")
show("read a after a write through b", lambda: open("a").read())
show("unlink a", lambda: os.unlink("a"))
show("nlink b, sub/c", lambda: nlinks("b", "sub/c"))
show("read sub/c", lambda: open("sub/c").read())
show("rename b onto sub/c, its own link", lambda: os.rename("b", "sub/c"))
show("both names stay", lambda: sorted(os.listdir(".")) + sorted(os.listdir("sub")))
show("rename b over a new name", lambda: os.rename("b", "e"))
show("nlink e, sub/c", lambda: nlinks("e", "sub/c"))
show("unlink sub/c", lambda: os.unlink("sub/c"))
show("nlink e", lambda: nlinks("e"))

# an open file whose names are all gone cannot be named again
fd = os.open("gone", os.O_RDWR | os.O_CREAT, 0o644)
os.unlink("gone")
show("linkat AT_EMPTY_PATH of an unlinked file", lambda: linkat(fd, "", AT_FDCWD, "back", AT_EMPTY_PATH))
os.close(fd)
# O_TMPFILE: named by linkat unless made with O_EXCL
fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o640)
os.write(fd, b"tmp data")
show("linkat AT_EMPTY_PATH of an O_TMPFILE", lambda: linkat(fd, "", AT_FDCWD, "named", AT_EMPTY_PATH))
show("named", lambda: (open("named").read(), nlinks("named"), oct(os.stat("named").st_mode)))
show("linkat AT_EMPTY_PATH of it again", lambda: linkat(fd, "", AT_FDCWD, "named2", AT_EMPTY_PATH))
show("nlink named", lambda: nlinks("named"))
os.close(fd)
fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o640)
show("linkat AT_EMPTY_PATH of an O_TMPFILE|O_EXCL", lambda: linkat(fd, "", AT_FDCWD, "excl", AT_EMPTY_PATH))
os.close(fd)

# an immutable file cannot get a link
fd = os.open("e", os.O_RDONLY)
set_immutable(fd, True)
show("link an immutable file", lambda: os.link("e", "imm"))
set_immutable(fd, False)
os.close(fd)

# protected hard links: a user who does not own the file needs read and write access to it
with open("private", "w") as f:
    f.write("root's")
os.chmod("private", 0o600)
with open("shared", "w") as f:
    f.write("anyone's")
os.chmod("shared", 0o666)


def nobody():
    show("nobody links root's 0600 file", lambda: os.link("private", "p2"))
    show("nobody links root's 0666 file", lambda: os.link("shared", "s2"))


as_nobody(nobody)
show("entries", lambda: sorted(os.listdir(".")))
show("nlink shared", lambda: nlinks("shared"))
