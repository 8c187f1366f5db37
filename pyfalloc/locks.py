"""Per-inode reader/writer locks that exclude across processes and threads.

Open-file-description locks (F_OFD_SETLKW) on one byte per inode, far past the end of
the image file, so they never touch data; a threading lock per inode orders the threads
of one process, which share the description.
"""
import contextlib
import fcntl
import os
import struct
import threading

_BASE = 1 << 62
F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)


class InodeLocks:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._local = threading.RLock()

    def _fcntl(self, ino, kind):
        # struct flock: l_type, l_whence, l_start, l_len, l_pid (must be 0 for OFD locks)
        fcntl.fcntl(self.fd, F_OFD_SETLKW, struct.pack("@hhqqi4x", kind, os.SEEK_SET, _BASE + ino, 1, 0))

    @contextlib.contextmanager
    def hold(self, inos, exclusive=True):
        """Lock inodes in ascending order (so two movers never deadlock)."""
        inos = sorted(set(inos))
        with self._local:
            taken = []
            try:
                for ino in inos:
                    self._fcntl(ino, fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK)
                    taken.append(ino)
                yield
            finally:
                for ino in reversed(taken):
                    self._fcntl(ino, fcntl.F_UNLCK)

    def exclusive(self, *inos):
        return self.hold(inos, True)

    def shared(self, *inos):
        return self.hold(inos, False)

    def close(self):
        os.close(self.fd)
