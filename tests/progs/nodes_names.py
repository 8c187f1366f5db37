"""mknod and mkfifo, the mode bits mkdir, mknod and open keep, paths of PATH_MAX bytes and
more, and a relative create that bypasses libc from an image working directory: printed
for comparison with a host directory.

    python nodes_names.py DIR
"""
import ctypes
import os
import stat
import sys

from oracle import show

d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)


show("mknod regular", lambda: (os.mknod(d + "/reg", 0o640 | stat.S_IFREG), oct(os.stat(d + "/reg").st_mode)))
show("mknod regular again", lambda: os.mknod(d + "/reg", 0o640 | stat.S_IFREG))
show("mknod a directory", lambda: os.mknod(d + "/dir", 0o755 | stat.S_IFDIR))
show("mknod in a missing directory", lambda: os.mkfifo(d + "/missing/fifo"))
show("mkfifo over a file", lambda: os.mkfifo(d + "/reg"))
saved = os.umask(0)
# mkdir keeps the permission and sticky bits of its mode only; mknod and open keep them all
show("mkdir 07777", lambda: (os.mkdir(d + "/all", 0o7777), oct(os.stat(d + "/all").st_mode)))
show("mknod 07777", lambda: (os.mknod(d + "/allreg", 0o7777 | stat.S_IFREG), oct(os.stat(d + "/allreg").st_mode)))
show("open 07777", lambda: (os.close(os.open(d + "/allopen", os.O_CREAT | os.O_WRONLY, 0o7777)),
                            oct(os.stat(d + "/allopen").st_mode)))
os.umask(saved)
long = d + "/" + "/".join(["n" * 200] * 21)           # over PATH_MAX, every name allowed
show("open a path over PATH_MAX", lambda: os.open(long, os.O_RDWR | os.O_CREAT))
show("stat a path over PATH_MAX", lambda: os.stat(long))
show("a name over 255 bytes", lambda: os.open(d + "/" + "x" * 256, os.O_RDWR | os.O_CREAT))
