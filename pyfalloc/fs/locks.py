"""Per-inode locks that exclude across processes and threads, in two levels as ext4 has:

- the inode lock (ext4's i_rwsem): taken by everything that changes a file's metadata,
  and by a move for its whole length, so those writers wait for a move to finish (an
  overwrite that changes no metadata, served in C, takes neither: see below);
- the data lock: shared by readers, exclusive while a file's bytes or mapping change, so a
  read never sees half a write (POSIX's atomicity of read against write) nor a half-switched
  range. The shim's reads and overwrites in C do not take it: its holders close or hold the
  inode's gate (pyfalloc/store/gates.py) instead, which costs those paths no system call.

Open-file-description locks (F_OFD_SETLKW) on one byte per inode and level, far past the
end of the image file, so they never touch data; a threading lock orders the threads of one
process, which share the description. Inode locks are always taken before data locks and
inodes in ascending order, so two movers never deadlock. An inode's two bytes are
neighbours: both levels of one inode are one system call to take and one to give back.
"""
import _thread
import fcntl
import os

from pyfalloc.forks import at_fork_in_child, forget_fork
from pyfalloc.store.shared import ofd_conflict, ofd_lock

_BASE = 1 << 62
_MOVE_BASE = _BASE + (1 << 41)      # past every inode's pair (inode numbers stay below 2^40)


def _inode_byte(ino):
    return _BASE + 2 * ino


def _data_byte(ino):
    return _BASE + 2 * ino + 1


class InodeLocks:
    def __init__(self, path, gates, after_acquire=None, readonly=False):
        self.path = path
        self.gates = gates
        self.mode = os.O_RDONLY if readonly else os.O_RDWR     # a reader takes shared locks only
        self.fd = os.open(path, self.mode | os.O_CLOEXEC)
        self._local = _thread.RLock()
        # what a lock holder must see is what was published before it got the lock:
        # after_acquire(None) catches up with everything, after_acquire(inos) with those
        # inodes' changes only (for a holder that reads nothing else)
        self.after_acquire = after_acquire or (lambda inos: None)
        at_fork_in_child(self)

    def _after_fork(self):
        """A description of its own: OFD locks of a shared one would not exclude the parent."""
        fd = os.open(self.path, self.mode | os.O_CLOEXEC)
        os.close(self.fd)
        self.fd = fd
        self._local = _thread.RLock()

    def _fcntl(self, start, length, kind):
        ofd_lock(self.fd, kind, start, length)

    def _hold(self, plan, scope=None, gate=None):
        """plan: (first byte, bytes, lock type), in the order they must be taken; scope:
        the inodes whose changes the holder must see (None: every change); gate: (CLOSE or
        HOLD, inodes) once the plan is held."""
        return _Held(self, plan, scope, gate)

    def exclusive(self, *inos, local=False):
        """Change files: their inode locks, then their data locks. local: the holder reads
        and changes nothing but these inodes' rows."""
        inos = sorted(set(inos))
        if len(inos) == 1:
            plan = [(_inode_byte(inos[0]), 2, fcntl.F_WRLCK)]
        else:
            plan = [(_inode_byte(i), 1, fcntl.F_WRLCK) for i in inos] + [(_data_byte(i), 1, fcntl.F_WRLCK) for i in inos]
        return self._hold(plan, inos if local else None, (CLOSE, inos))

    def shared(self, *inos):
        """Read files' bytes."""
        inos = sorted(set(inos))
        return self._hold([(_data_byte(i), 1, fcntl.F_RDLCK) for i in inos], gate=(HOLD, inos))

    def stable(self, *inos):
        """Read files' mappings, not their bytes: no change of them is under way, and the
        counters read under this lock agree with the mapping read under it."""
        inos = sorted(set(inos))
        return self._hold([(_data_byte(i), 1, fcntl.F_RDLCK) for i in inos], inos)

    def inode(self, *inos):
        """Hold off writers (a move holds this throughout, and the data locks per step; an
        allocation into holes holds only this, as ext4's fallocate holds only i_rwsem: no
        byte a reader or an overwrite can reach changes)."""
        return self._hold([(_inode_byte(i), 1, fcntl.F_WRLCK) for i in sorted(set(inos))])

    def data(self, *inos):
        inos = sorted(set(inos))
        return self._hold([(_data_byte(i), 1, fcntl.F_WRLCK) for i in inos], gate=(CLOSE, inos))

    def move(self, mid):
        """Held by a relocation while it runs: its row outlives a dead mover only until the
        next reap, which finds the byte free."""
        return self._hold([(_MOVE_BASE + mid, 1, fcntl.F_WRLCK)])

    def move_alive(self, mid):
        return ofd_conflict(self.fd, fcntl.F_WRLCK, _MOVE_BASE + mid)

    def close(self):
        forget_fork(self)
        os.close(self.fd)


CLOSE, HOLD = "close", "hold"


class _Held:
    """Locks taken on entry in plan order, released in reverse on exit (a class, not a
    generator: every read takes one, and a generator costs more than the two fcntl calls)."""
    __slots__ = ("locks", "plan", "taken", "scope", "gate", "holding")

    def __init__(self, locks, plan, scope, gate):
        self.locks, self.plan, self.taken, self.scope, self.gate, self.holding = locks, plan, [], scope, gate, False

    def __enter__(self):
        self.locks._local.acquire()
        try:
            for start, length, kind in self.plan:
                self.locks._fcntl(start, length, kind)
                self.taken.append((start, length))
            how, inos = self.gate or (None, ())
            if how is CLOSE:
                self.locks.gates.close(inos)
            self.locks.after_acquire(self.scope)
            if how is HOLD:         # last: a gate's holder waits for nothing (the log's lock
                self.locks.gates.hold(inos)     # may be held by one who waits for the gate)
                self.holding = True
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self.holding:
                self.holding = False
                self.locks.gates.release(self.gate[1])
            for start, length in reversed(self.taken):
                self.locks._fcntl(start, length, fcntl.F_UNLCK)
        finally:
            self.taken = []
            self.locks._local.release()
