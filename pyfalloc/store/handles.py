"""Open files across processes, as the kernel's inode reference counts: a process that has
an inode open holds a shared lock on one byte of the shared log file (at HANDLE_BASE + ino,
through a description of its own). An unlinked inode is freed when nobody holds that byte;
a process that dies lets go of its bytes at once, and the next opener frees the orphans
nobody holds (fs.reap).
"""
import fcntl
import os

from pyfalloc.forks import at_fork_in_child, forget_fork
from pyfalloc.store.shared import ofd_conflict, ofd_holders, ofd_lock

HANDLE_BASE = 1 << 40


class Handles:
    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self.count = {}                 # ino -> open descriptions in this process
        at_fork_in_child(self)

    def hold(self, ino):
        n = self.count.get(ino, 0)
        if not n:
            ofd_lock(self.fd, fcntl.F_RDLCK, HANDLE_BASE + ino)
        self.count[ino] = n + 1

    def drop(self, ino):
        """Returns True when this process no longer holds ino."""
        n = self.count.get(ino, 0) - 1
        if n > 0:
            self.count[ino] = n
            return False
        self.count.pop(ino, None)
        ofd_lock(self.fd, fcntl.F_UNLCK, HANDLE_BASE + ino)
        return True

    def in_use(self, ino, probe_fd):
        """Whether any process (this one included) holds ino; probe_fd is a description that
        holds no handle locks."""
        return ino in self.count or ofd_conflict(probe_fd, fcntl.F_WRLCK, HANDLE_BASE + ino)

    def held(self, probe_fd, limit):
        """Every inode below limit that some process holds, in one pass over the locks (as
        fuser or lsof read /proc once instead of asking per file)."""
        out = set(self.count)
        for a, b in ofd_holders(probe_fd, fcntl.F_WRLCK, HANDLE_BASE, limit):
            out.update(range(a - HANDLE_BASE, b - HANDLE_BASE))
        return out

    def _after_fork(self):
        """The child's handles on a description of its own, or the parent's closes would
        drop them."""
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        os.close(self.fd)
        self.fd = fd
        for ino in self.count:
            ofd_lock(fd, fcntl.F_RDLCK, HANDLE_BASE + ino)

    def close(self):
        forget_fork(self)
        os.close(self.fd)
        self.count.clear()
