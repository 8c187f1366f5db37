"""Advisory locks between processes and pwritev2/preadv2 flags, printed so a run in a host
directory and a run on the image can be compared line by line.

    python locks_rwf.py DIR
"""
import fcntl
import os
import subprocess
import sys

from oracle import show

d = sys.argv[1]
path = os.path.join(d, "locked")


HOLDER = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
kind = sys.argv[2]
if kind == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)
elif kind == "posix":
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
else:
    fcntl.fcntl(fd, 37, struct.pack("@hhqqi4x", fcntl.F_WRLCK, 0, 0, 10, 0))   # F_OFD_SETLK
print("held", flush=True)
sys.stdin.readline()
"""

with open(path, "wb") as f:
    f.write(b"0123456789" * 10)
for kind in ("flock", "posix", "ofd"):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, kind], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    fd = os.open(path, os.O_RDWR)
    show(f"{kind} held: flock LOCK_EX|LOCK_NB", lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB))
    show(f"{kind} held: lockf LOCK_EX|LOCK_NB bytes 0-9", lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0))
    show(f"{kind} held: lockf LOCK_EX|LOCK_NB bytes 20-29", lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20))
    show(f"{kind} held: flock(1) -n", lambda: subprocess.run(["flock", "-n", path, "true"]).returncode)
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait()
    show(f"{kind} released: flock(1) -n", lambda: subprocess.run(["flock", "-n", path, "true"]).returncode)
    os.close(fd)

fd = os.open(path, os.O_RDWR)
buf = bytearray(8)
show("pwritev2 DSYNC", lambda: os.pwritev(fd, [b"AB", b"CD"], 2, os.RWF_DSYNC))
show("pwritev2 SYNC|HIPRI", lambda: os.pwritev(fd, [b"ef"], 6, os.RWF_SYNC | os.RWF_HIPRI))
show("pwritev2 APPEND", lambda: os.pwritev(fd, [b"tail"], 0, os.RWF_APPEND))
show("pwritev2 NOWAIT", lambda: os.pwritev(fd, [b"x"], 0, os.RWF_NOWAIT))
show("pwritev2 unknown flag", lambda: os.pwritev(fd, [b"x"], 0, 0x1000))
RWF_DONTCACHE = 0x80                        # Linux 6.15; the answer is the running kernel's
show("pwritev2 DONTCACHE", lambda: os.pwritev(fd, [b"dc"], 10, RWF_DONTCACHE))
show("preadv2 DONTCACHE", lambda: (os.preadv(fd, [buf], 8, RWF_DONTCACHE), bytes(buf)))
show("pwritev2 at -1 (position)", lambda: (os.lseek(fd, 50, 0), os.pwritev(fd, [b"pos"], -1, os.RWF_DSYNC),
                                           os.lseek(fd, 0, os.SEEK_CUR)))
show("pwritev2 at -2", lambda: os.pwritev(fd, [b"x"], -2, os.RWF_DSYNC))
show("preadv2 NOWAIT", lambda: (os.preadv(fd, [buf], 0, os.RWF_NOWAIT), bytes(buf)))
show("preadv2 HIPRI two buffers", lambda: (os.preadv(fd, [buf, bytearray(3)], 96, os.RWF_HIPRI), bytes(buf)))
show("preadv2 unknown flag", lambda: os.preadv(fd, [buf], 0, 0x1000))
show("preadv at -1", lambda: os.preadv(fd, [buf], -1))
show("size", lambda: os.fstat(fd).st_size)
os.close(fd)
with open(path, "rb") as f:
    print("content:", f.read())
