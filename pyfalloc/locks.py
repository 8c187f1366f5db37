"""Per-inode locks that exclude across processes and threads, in two levels as ext4 has:

- the inode lock (ext4's i_rwsem): taken by everything that changes a file, and by a
  move for its whole length, so writers wait for a move to finish;
- the data lock (ext4's i_data_sem): shared by readers, exclusive while a mapping
  changes, so a read never sees a half-switched range.

Open-file-description locks (F_OFD_SETLKW) on one byte per inode and level, far past the
end of the image file, so they never touch data; a threading lock orders the threads of
one process, which share the description. Inode locks are always taken before data locks
and inodes in ascending order, so two movers never deadlock.
"""
import fcntl
import os
import struct
import threading

_INODE_BASE = 1 << 62
_DATA_BASE = _INODE_BASE + (1 << 40)
F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)


class InodeLocks:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._local = threading.RLock()

    def _fcntl(self, byte, kind):
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (must be 0 for OFD locks)
        fcntl.fcntl(self.fd, F_OFD_SETLKW, struct.pack("@hhqqi4x", kind, os.SEEK_SET, byte, 1, 0))

    def _hold(self, plan):
        """plan: (byte, lock type) pairs, in the order they must be taken."""
        return _Held(self, plan)

    def exclusive(self, *inos):
        """Change a file: its inode lock, then its data lock."""
        inos = sorted(set(inos))
        return self._hold([(_INODE_BASE + i, fcntl.F_WRLCK) for i in inos]
                          + [(_DATA_BASE + i, fcntl.F_WRLCK) for i in inos])

    def shared(self, *inos):
        """Read a file's data or mapping."""
        return self._hold([(_DATA_BASE + i, fcntl.F_RDLCK) for i in sorted(set(inos))])

    def inode(self, *inos):
        """Hold off writers (a move holds this throughout, and the data lock per step)."""
        return self._hold([(_INODE_BASE + i, fcntl.F_WRLCK) for i in sorted(set(inos))])

    def data(self, *inos):
        return self._hold([(_DATA_BASE + i, fcntl.F_WRLCK) for i in sorted(set(inos))])

    def close(self):
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
