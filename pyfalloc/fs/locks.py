"""Per-inode locks that exclude across processes and threads, in two levels as ext4 has:

- the inode lock (ext4's i_rwsem): taken by everything that changes a file's metadata,
  and by a move for its whole length, so those writers wait for a move to finish (an
  overwrite that changes no metadata, served in C, takes neither: see below);
- the data lock: shared by readers, exclusive while a file's bytes or mapping change, so a
  read never sees half a write (POSIX's atomicity of read against write) nor a half-switched
  range. The shim's reads and overwrites in C do not take it: its holders close or hold the
  inode's gate (pyfalloc/store/gates.py) instead, which costs those paths no system call.

The inode lock is exclusive only, so it is a robust mutex in the shared log's mapping, one
per slot of inodes (ino % slots, made as the gates are): an allocation holds nothing else,
and takes it without a system call. Two inodes of one slot share it; the mutex is
recursive, so one holder may take both. The data lock, shared or exclusive, is an
open-file-description lock (F_OFD_SETLKW) on one byte per inode far past the end of the
image file, so it never touches data. A threading lock orders the threads of one process.
Inode locks are taken at once, in ascending slot order, before any data lock, and data
locks in ascending inode order, so two movers never deadlock.
"""
import _thread
import fcntl
import os

from pyfalloc.forks import at_fork_in_child, forget_fork
from pyfalloc.store.shared import ofd_conflict, ofd_lock

_BASE = 1 << 62
_MOVE_BASE = _BASE + (1 << 41)      # past every inode's byte (inode numbers stay below 2^40)


def _data_byte(ino):
    return _BASE + ino


class InodeLocks:
    def __init__(self, path, gates, slots, after_acquire=None, readonly=False):
        self.path = path
        self.gates = gates
        self.slots = slots              # the inode locks (gates.Gates: hold and release)
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

    def _fcntl(self, byte, kind):
        ofd_lock(self.fd, kind, byte)

    def _hold(self, inodes, plan, scope=None, gate=None):
        """inodes: those whose inode locks are taken first; plan: (byte, lock type) of the
        data locks, in the order they must be taken; scope: the inodes whose changes the
        holder must see (None: every change); gate: (CLOSE or HOLD, inodes) once held."""
        return _Held(self, inodes, plan, scope, gate)

    def exclusive(self, *inos, local=False):
        """Change files: their inode locks, then their data locks. local: the holder reads
        and changes nothing but these inodes' rows."""
        inos = sorted(set(inos))
        return self._hold(inos, [(_data_byte(i), fcntl.F_WRLCK) for i in inos], inos if local else None, (CLOSE, inos))

    def shared(self, *inos):
        """Read files' bytes."""
        inos = sorted(set(inos))
        return self._hold((), [(_data_byte(i), fcntl.F_RDLCK) for i in inos], gate=(HOLD, inos))

    def stable(self, *inos):
        """Read files' mappings, not their bytes: no change of them is under way, and the
        counters read under this lock agree with the mapping read under it."""
        inos = sorted(set(inos))
        return self._hold((), [(_data_byte(i), fcntl.F_RDLCK) for i in inos], inos)

    def inode(self, *inos):
        """Hold off writers (a move holds this throughout, and the data locks per step; an
        allocation into holes holds only this, as ext4's fallocate holds only i_rwsem: no
        byte a reader or an overwrite can reach changes)."""
        return self._hold(inos, ())

    def data(self, *inos):
        inos = sorted(set(inos))
        return self._hold((), [(_data_byte(i), fcntl.F_WRLCK) for i in inos], gate=(CLOSE, inos))

    def move(self, mid):
        """Held by a relocation while it runs: its row outlives a dead mover only until the
        next reap, which finds the byte free."""
        return self._hold((), [(_MOVE_BASE + mid, fcntl.F_WRLCK)])

    def move_alive(self, mid):
        return ofd_conflict(self.fd, fcntl.F_WRLCK, _MOVE_BASE + mid)

    def close(self):
        forget_fork(self)
        os.close(self.fd)


CLOSE, HOLD = "close", "hold"


class _Held:
    """Locks taken on entry (inode locks, then the plan's in order), released in reverse on
    exit (a class, not a generator: every read takes one, and a generator costs more than
    the two fcntl calls)."""
    __slots__ = ("locks", "inodes", "plan", "taken", "scope", "gate", "holding", "slotted")

    def __init__(self, locks, inodes, plan, scope, gate):
        self.locks, self.inodes, self.plan, self.scope, self.gate = locks, inodes, plan, scope, gate
        self.taken, self.holding, self.slotted = [], False, False

    def __enter__(self):
        locks = self.locks
        locks._local.acquire()
        try:
            if self.inodes:
                locks.slots.hold(self.inodes)
                self.slotted = True
            for byte, kind in self.plan:
                locks._fcntl(byte, kind)
                self.taken.append(byte)
            how, inos = self.gate or (None, ())
            if how is CLOSE:
                locks.gates.close(inos)
            locks.after_acquire(self.scope)
            if how is HOLD:         # last: a gate's holder waits for nothing (the log's lock
                locks.gates.hold(inos)          # may be held by one who waits for the gate)
                self.holding = True
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        locks = self.locks
        try:
            if self.holding:
                self.holding = False
                locks.gates.release(self.gate[1])
            for byte in reversed(self.taken):
                locks._fcntl(byte, fcntl.F_UNLCK)
            if self.slotted:
                self.slotted = False
                locks.slots.release(self.inodes)
        finally:
            self.taken = []
            locks._local.release()
