"""Per-inode locks that exclude across processes and threads: the inode lock (ext4's
i_rwsem), taken by everything that changes a file and by a move for its whole length, so
writers wait for a move to finish.

Readers take no lock. A mapping changes in one published change, and each process applies
a change whole, so a reader's lookup never sees half of one; blocks that leave a file stay
pending until a commit, and a read that overlapped a release looks again (fs.read_into).

Open-file-description locks (F_OFD_SETLKW) on one byte per inode, far past the end of the
image file, so they never touch data; a threading lock orders the threads of one process,
which share the description. Inodes are locked in ascending order, so two movers never
deadlock.
"""
import fcntl
import os
import struct
import threading

from pyfalloc.store.forks import at_fork_in_child, forget_fork

_INODE_BASE = 1 << 62
_MOVE_BASE = _INODE_BASE + (1 << 41)
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)


class InodeLocks:
    def __init__(self, path, after_acquire=None):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._local = threading.RLock()
        # what a lock holder must see is what was published before it got the lock
        self.after_acquire = after_acquire or (lambda: None)
        at_fork_in_child(self)

    def _after_fork(self):
        """A description of its own: OFD locks of a shared one would not exclude the parent."""
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        os.close(self.fd)
        self.fd = fd
        self._local = threading.RLock()

    def _fcntl(self, byte, kind):
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (must be 0 for OFD locks)
        fcntl.fcntl(self.fd, F_OFD_SETLKW, struct.pack("@hhqqi4x", kind, os.SEEK_SET, byte, 1, 0))

    def _hold(self, plan):
        """plan: (byte, lock type) pairs, in the order they must be taken."""
        return _Held(self, plan)

    def exclusive(self, *inos):
        """Change files (or move them): their inode locks."""
        return self._hold([(_INODE_BASE + i, fcntl.F_WRLCK) for i in sorted(set(inos))])

    inode = exclusive

    def move(self, mid):
        """Held by a relocation while it runs: its row outlives a dead mover only until the
        next reap, which finds the byte free."""
        return self._hold([(_MOVE_BASE + mid, fcntl.F_WRLCK)])

    def move_alive(self, mid):
        out = fcntl.fcntl(self.fd, F_OFD_GETLK, struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET,
                                                            _MOVE_BASE + mid, 1, 0))
        return struct.unpack("@hhqqi4x", out)[0] != fcntl.F_UNLCK

    def close(self):
        forget_fork(self)
        os.close(self.fd)


class _Held:
    """Locks taken on entry in plan order, released in reverse on exit (a class, not a
    generator: every read takes one, and a generator costs more than the two fcntl calls)."""
    __slots__ = ("locks", "plan", "taken")

    def __init__(self, locks, plan):
        self.locks, self.plan, self.taken = locks, plan, []

    def __enter__(self):
        self.locks._local.acquire()
        try:
            for byte, kind in self.plan:
                self.locks._fcntl(byte, kind)
                self.taken.append(byte)
            self.locks.after_acquire()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        try:
            for byte in reversed(self.taken):
                self.locks._fcntl(byte, fcntl.F_UNLCK)
        finally:
            self.taken = []
            self.locks._local.release()
