"""The links of descriptors in /proc and /dev/fd, printed so a run in a host directory and a
run on the image can be compared line by line: a file's path (its new one after a rename, "
(deleted)" after it once unlinked), a directory's, and what realpath makes of them.

    python fd_links.py DIR
"""
import os
import sys

from oracle import show, workdir

top = workdir(sys.argv[1], "fl")
fd = os.open("f", os.O_RDWR | os.O_CREAT, 0o644)
d = os.open(".", os.O_RDONLY)
gone = os.open("u", os.O_RDWR | os.O_CREAT, 0o644)
os.unlink("u")


def link(path):
    return os.readlink(path).replace(top, "TOP")


show("/proc/self/fd of a file", lambda: link(f"/proc/self/fd/{fd}"))
show("/proc/PID/fd of a file", lambda: link(f"/proc/{os.getpid()}/fd/{fd}"))
show("/proc/thread-self/fd of a directory", lambda: link(f"/proc/thread-self/fd/{d}"))
show("/dev/fd of a directory", lambda: link(f"/dev/fd/{d}"))
os.rename("f", "g")
show("after a rename", lambda: link(f"/proc/self/fd/{fd}"))
show("realpath", lambda: os.path.realpath(f"/proc/self/fd/{fd}").replace(top, "TOP"))
show("unlinked", lambda: link(f"/proc/self/fd/{gone}"))
