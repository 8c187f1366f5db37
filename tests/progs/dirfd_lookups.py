"""Names looked up relative to a descriptor, printed so a run in a host directory and a run
on the image can be compared line by line: a directory renamed while open is searched
under its new name (never a directory that took the old one), a removed one holds no
names, a file's descriptor gives ENOTDIR even for "." and ".." and once unlinked, and an
empty name without AT_EMPTY_PATH is ENOENT.

    python dirfd_lookups.py DIR
"""
import os
import sys

from oracle import show, workdir

workdir(sys.argv[1], "dl")
os.mkdir("a")
d = os.open("a", os.O_RDONLY | os.O_DIRECTORY)
show("create a/x by fd", lambda: os.close(os.open("x", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=d)))
os.rename("a", "b")
os.mkdir("a")                           # the old name, another directory
show("create y after the rename", lambda: os.close(os.open("y", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=d)))
show("mkdir z after the rename", lambda: os.mkdir("z", dir_fd=d))
show("stat x after the rename", lambda: os.stat("x", dir_fd=d).st_size)
show("stat .. after the rename", lambda: os.stat("..", dir_fd=d).st_nlink)
show("in b", lambda: sorted(os.listdir("b")))
show("in a", lambda: sorted(os.listdir("a")))
os.rename("b", "a/c")                   # moved down a level
show("create w after the move", lambda: os.close(os.open("w", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=d)))
show("in a/c", lambda: sorted(os.listdir("a/c")))
os.mkdir("r")
r = os.open("r", os.O_RDONLY | os.O_DIRECTORY)
os.rmdir("r")
os.mkdir("r")                           # the removed directory's name, taken again
show("create in a removed directory", lambda: os.open("n", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=r))
show("mkdir in a removed directory", lambda: os.mkdir("n", dir_fd=r))
show("stat in a removed directory", lambda: os.stat("n", dir_fd=r))
show("in r", lambda: os.listdir("r"))
f = os.open("f", os.O_RDWR | os.O_CREAT, 0o644)
for name in ("x", ".", "..", "./t/u", ""):
    show(f"stat {name!r} under a file", lambda: os.stat(name, dir_fd=f).st_size)
show("open under a file", lambda: os.open("x", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=f))
show("stat '' under a directory", lambda: os.stat("", dir_fd=d).st_size)
os.unlink("f")
for name in ("x", ".", ".."):
    show(f"stat {name!r} under an unlinked file", lambda: os.stat(name, dir_fd=f).st_size)
show("mkdir under an unlinked file", lambda: os.mkdir("m", dir_fd=f))
show("rename under an unlinked file", lambda: os.rename("x", "y", src_dir_fd=f, dst_dir_fd=f))
show("entries", lambda: sorted(os.listdir(".")))
