"""FIFOs, sockets and device nodes made by mknod and mkfifo, printed so a run in a host
directory and a run on the image can be compared line by line: their types, modes (the
umask applied) and device numbers, their errno in do_mknodat's order, a FIFO carrying
bytes between two processes, the open of a socket, and rename's whiteouts.

    python special_files.py DIR
"""
import errno
import os
import stat
import sys

from oracle import check, libc, show, workdir

AT_FDCWD, RENAME_EXCHANGE, RENAME_WHITEOUT = -100, 2, 4
workdir(sys.argv[1], "sp")
os.umask(0o022)


def kind(path):
    s = os.lstat(path)
    return stat.filemode(s.st_mode), s.st_size, os.major(s.st_rdev), os.minor(s.st_rdev)


show("mkfifo", lambda: os.mkfifo("fifo", 0o666))
show("mkfifo again", lambda: os.mkfifo("fifo"))
show("fifo", lambda: kind("fifo"))
show("mknod socket", lambda: os.mknod("sock", stat.S_IFSOCK | 0o600))
show("socket", lambda: kind("sock"))
show("mknod char device", lambda: os.mknod("chr", stat.S_IFCHR | 0o640, os.makedev(4, 64)))
show("char device", lambda: kind("chr"))
show("mknod block device", lambda: os.mknod("blk", stat.S_IFBLK | 0o600, os.makedev(7, 3)))
show("block device", lambda: kind("blk"))
show("mknod regular", lambda: os.mknod("reg", stat.S_IFREG | 0o644))
show("regular", lambda: kind("reg"))
show("mknod directory", lambda: os.mknod("dir", stat.S_IFDIR | 0o755))
show("mknod bad type", lambda: os.mknod("bad", 0o170000 | 0o644))
show("mknod over a name", lambda: os.mknod("reg", stat.S_IFIFO))
show("mknod in a missing directory", lambda: os.mknod("no/fifo", stat.S_IFIFO))
show("types", lambda: sorted((e.name, e.is_file(), e.is_dir()) for e in os.scandir(".")))
show("open a socket", lambda: os.open("sock", os.O_RDONLY))
show("open a FIFO to write, no reader", lambda: os.open("fifo", os.O_WRONLY | os.O_NONBLOCK))
r = os.open("fifo", os.O_RDONLY | os.O_NONBLOCK)
show("open a FIFO to write, a reader there", lambda: os.close(os.open("fifo", os.O_WRONLY)) or "opened")
pid = os.fork()
if pid == 0:                # the writer: another process
    w = os.open("fifo", os.O_WRONLY)
    os.write(w, b"through the fifo\n")
    os._exit(0)
os.waitpid(pid, 0)
show("read what the other process wrote", lambda: os.read(r, 100))
os.close(r)
show("rename a FIFO", lambda: (os.rename("fifo", "fifo2"), kind("fifo2")[0])[1])
show("link a FIFO", lambda: (os.link("fifo2", "fifo3"), os.lstat("fifo2").st_nlink)[1])
show("chmod a FIFO", lambda: (os.chmod("fifo3", 0o600), kind("fifo2")[0])[1])


def renameat2(a, b, flags):
    return check(libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags))


show("rename with a whiteout", lambda: (renameat2("reg", "moved", RENAME_WHITEOUT), kind("reg"), kind("moved")[0])[1:])
show("whiteout with exchange", lambda: renameat2("moved", "reg", RENAME_WHITEOUT | RENAME_EXCHANGE))
show("unlink", lambda: [os.unlink(n) for n in ("fifo2", "fifo3", "sock", "chr", "blk", "reg", "moved")])
show("entries", lambda: sorted(os.listdir(".")))
if os.getuid() == 0:
    os.chmod(".", 0o777)
    pid = os.fork()
    if pid == 0:
        os.setgid(65534)
        os.setuid(65534)
        show("mknod a device as nobody", lambda: os.mknod("chr2", stat.S_IFCHR | 0o600, os.makedev(1, 3)))
        show("mkfifo as nobody", lambda: (os.mkfifo("f2"), kind("f2")[0])[1])
        show("whiteout as nobody", lambda: renameat2("f2", "f3", RENAME_WHITEOUT))
        os.chmod("f3", 0o444)
        show("open a read-only FIFO to read, as nobody", lambda: os.close(os.open("f3", os.O_RDONLY | os.O_NONBLOCK)))
        show("the same with O_TRUNC (may_open asks write)",
             lambda: os.close(os.open("f3", os.O_RDONLY | os.O_TRUNC | os.O_NONBLOCK)))
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
