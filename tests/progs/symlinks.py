"""Symbolic links, printed so a run in a host directory and a run on the image can be
compared line by line: making them (and the errno of a bad one), lstat and readlink, every
call that follows a link or acts on the link itself, links among a path's directories,
relative and absolute targets, dangling links, loops and namei's limit of 40.

    python symlinks.py DIR
"""
import os
import sys

from oracle import check, libc, show, workdir

AT_FDCWD, AT_SYMLINK_NOFOLLOW = -100, 0x100
top = workdir(sys.argv[1], "sy")
os.makedirs("d/e")
with open("d/e/f", "w") as f:
    f.write("file f\n")
T = lambda p: p.replace(top, "TOP") if isinstance(p, str) else p     # noqa: E731


def read(path, **kw):
    fd = os.open(path, os.O_RDONLY, **kw)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def mode(path, follow=True):
    s = os.stat(path, follow_symlinks=follow)
    return oct(s.st_mode), s.st_size, s.st_nlink


show("symlink", lambda: os.symlink("d/e/f", "lf"))
show("symlink to a directory", lambda: os.symlink("d/e", "le"))
show("symlink absolute", lambda: os.symlink(f"{top}/d/e/f", "abs"))
show("symlink upward", lambda: os.symlink("../e/f", "d/e/up"))
show("symlink dangling", lambda: os.symlink("nothing/here", "dang"))
show("symlink dangling, a directory there", lambda: os.symlink("newfile", "d/dang2"))
show("symlink over a name", lambda: os.symlink("x", "lf"))
show("symlink empty target", lambda: os.symlink("", "empty"))
show("symlink new name/", lambda: os.symlink("x", "new/"))
show("symlink into a missing directory", lambda: os.symlink("x", "no/such"))
show("symlink long target", lambda: os.symlink("a" * 4095, "long"))
show("symlink too long target", lambda: os.symlink("a" * 4096, "toolong"))
show("lstat", lambda: mode("lf", False))
show("stat", lambda: mode("lf"))
show("lstat long", lambda: mode("long", False)[1])
show("blocks of a link and a directory", lambda: (os.lstat("lf").st_blocks, os.stat("d").st_blocks))
show("stat long", lambda: mode("long"))
show("readlink", lambda: os.readlink("lf"))
show("readlink absolute", lambda: T(os.readlink("abs")))
show("readlink a file", lambda: os.readlink("d/e/f"))
show("readlink a directory", lambda: os.readlink("d"))
show("readlink through a directory link", lambda: os.readlink("le/up"))
show("unlink long", lambda: os.unlink("long"))
show("read", lambda: read("lf"))
show("read absolute", lambda: read("abs"))
show("read through a directory link", lambda: read("le/f"))
show("read upward", lambda: read("le/up"))
show("read dangling", lambda: read("dang"))
show("open O_NOFOLLOW", lambda: os.open("lf", os.O_RDONLY | os.O_NOFOLLOW))
show("open O_NOFOLLOW through a directory link", lambda: os.close(os.open("le/f", os.O_RDONLY | os.O_NOFOLLOW)))
show("O_PATH|O_NOFOLLOW, fstat", lambda: oct(os.fstat(os.open("lf", os.O_PATH | os.O_NOFOLLOW)).st_mode))
show("O_CREAT|O_EXCL on a link", lambda: os.open("dang", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
show("O_CREAT through a dangling link, missing directory", lambda: os.open("dang", os.O_CREAT | os.O_WRONLY, 0o644))
show("O_CREAT through a dangling link", lambda: os.close(os.open("d/dang2", os.O_CREAT | os.O_WRONLY, 0o640)))
show("what it made", lambda: oct(os.stat("d/newfile").st_mode))
show("stat dir link/", lambda: mode("le/")[0])
show("stat file link/", lambda: mode("lf/"))
show("lstat dir link/", lambda: mode("le/", False)[0])
show("listdir through the link", lambda: sorted(os.listdir("le")))
show(".. after a link", lambda: os.path.samefile("le/..", "d"))
show("read by .. after a link", lambda: read("le/../e/f"))
show("listdir of .. after a link", lambda: sorted(os.listdir("le/..")))
show("types", lambda: sorted((e.name, e.is_symlink(), e.is_dir(), e.is_file()) for e in os.scandir(".")))
show("chmod through a link", lambda: (os.chmod("lf", 0o600), mode("d/e/f")[0])[1])
show("chmod of the link itself", lambda: check(libc.fchmodat(AT_FDCWD, b"lf", 0o644, AT_SYMLINK_NOFOLLOW)))
show("lchown", lambda: (os.chown("lf", 1, 2, follow_symlinks=False), os.lstat("lf").st_uid, os.stat("lf").st_uid)[1:])
show("utime of the link itself", lambda: (os.utime("lf", (5, 6), follow_symlinks=False), os.lstat("lf").st_mtime,
                                          os.stat("lf").st_mtime != 6)[1:])
show("access through a link", lambda: os.access("lf", os.R_OK))
show("access dangling", lambda: os.access("dang", os.F_OK))
show("truncate through a link", lambda: (os.truncate("lf", 3), read("d/e/f"))[1])
show("hard link of the link", lambda: (os.link("lf", "hl", follow_symlinks=False), mode("hl", False)[2]))
show("hard link of the target", lambda: (os.link("lf", "hl2"), mode("hl2", False)[0]))
show("user xattr of a link", lambda: os.setxattr("lf", "user.a", b"1", follow_symlinks=False))
show("user xattr through a link", lambda: (os.setxattr("lf", "user.a", b"1"), os.getxattr("d/e/f", "user.a"))[1])
show("xattrs of the link", lambda: os.listxattr("lf", follow_symlinks=False))
show("rmdir a link", lambda: os.rmdir("le"))
show("unlink dir link/", lambda: os.unlink("le/"))
show("rename a link", lambda: (os.rename("lf", "lf2"), os.readlink("lf2"))[1])
show("read after the rename", lambda: read("lf2"))
show("mkdir over a dangling link", lambda: os.mkdir("dang"))
show("realpath", lambda: T(os.path.realpath("le/up")))
show("realpath dangling", lambda: T(os.path.realpath("dang")))
os.symlink("loop2", "loop1")
os.symlink("loop1", "loop2")
show("loop", lambda: os.stat("loop1"))
show("loop, lstat", lambda: mode("loop1", False)[0])
os.symlink("d", "c0")
for i in range(1, 42):
    os.symlink(f"c{i - 1}", f"c{i}")
show("40 links", lambda: mode("c39/e/f")[0])
show("41 links", lambda: mode("c40/e/f")[0])
show("40 links through a directory", lambda: mode("c38/e/f")[0])
cwd = os.getcwd()
os.chdir("le")
show("getcwd after chdir through a link", lambda: T(os.getcwd()))
os.chdir(cwd)
show("unlink a link", lambda: (os.unlink("lf2"), os.path.exists("d/e/f"))[1])
show("entries", lambda: sorted(os.listdir("."))[:12])
# a target of up to 59 bytes lives in the inode; a longer one takes a block (st_blocks, du)
for n in (59, 60, 200):
    os.symlink("t" * n, f"long{n}")
    show(f"lstat st_blocks of a {n}-byte target", lambda: os.lstat(f"long{n}").st_blocks)
