"""Gates: what keeps the shim's overwrites in C (shim/fastread.c) off a file while Python
changes it or reads it, at the cost of a mutex in shared memory rather than two fcntl calls.

One gate per slot of inodes (ino % slots, as the change counters), in the shared log's
mapping: a robust, process-shared, recursive pthread mutex and a counter. The shim's
overwrite takes the mutex and writes only while the counter (and the inode's change
counter) still stand as when it learnt the extent. A change in Python, once it holds the
inode's data lock, moves the counter under the mutex: an overwrite already under way has
finished, and any later one sees the counter moved and takes the slow way, which waits on
the data lock. A read in Python holds the mutex throughout, so it never sees half an
overwrite; the shim's reads take nothing, and read again when a counter moved meanwhile.

Robust: a process that dies holding a gate leaves it to the next taker (EOWNERDEAD), and
the counter it guards is a single store, never half written. Recursive: a signal handler
that writes the image under an overwrite, or a nested hold in Python, takes it again.

The same tables, their counters unused, are the shared log's writer lock (one slot) and
the inode locks (fs/locks.py): locks every change takes, where two fcntl calls would cost
more than the rest of a small change's locking.
"""
import errno
import struct

GATE_SIZE = 64              # a cache line each; shim/fastread.c has the same layout
COUNT_AT = 48               # the counter's offset in a gate, past the 40-byte mutex
_MUTEX_SIZE = 40
_PSHARED, _RECURSIVE, _ROBUST = 1, 1, 1

# (take, give, init, address): take(at) -> 0 or an errno, after making a dead holder's
# mutex consistent; give(at); init(at, slots) every gate unlocked; address(mm) of a mapping
_calls = None


def use(take, give, init, address):
    """In a process the shim serves, its own C functions (shim/fastread.c, which takes the
    gates the same way): ctypes would add 2-3 ms to every such process's start."""
    global _calls
    _calls = (take, give, init, address)


def _ctypes_calls():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    lock, unlock, consistent = libc.pthread_mutex_lock, libc.pthread_mutex_unlock, libc.pthread_mutex_consistent
    for f in (lock, unlock, consistent):
        f.argtypes, f.restype = [ctypes.c_void_p], ctypes.c_int

    def take(at):
        r = lock(at)
        return consistent(at) if r == errno.EOWNERDEAD else r

    def init(at, slots):
        # glibc's unlocked mutex is plain data with no address in it (what a static
        # initializer relies on): one made by pthread_mutex_init is copied to every slot
        attr, mutex = ctypes.create_string_buffer(64), ctypes.create_string_buffer(GATE_SIZE)
        if (libc.pthread_mutexattr_init(attr) or libc.pthread_mutexattr_setpshared(attr, _PSHARED)
                or libc.pthread_mutexattr_settype(attr, _RECURSIVE) or libc.pthread_mutexattr_setrobust(attr, _ROBUST)
                or libc.pthread_mutex_init(mutex, attr)):
            raise OSError(errno.EINVAL, "pthread_mutex_init failed")
        ctypes.memmove(at, mutex.raw[:_MUTEX_SIZE] + bytes(GATE_SIZE - _MUTEX_SIZE), GATE_SIZE)
        done = 1
        while done < slots:         # doubling: a few calls, not one per slot
            n = min(done, slots - done)
            ctypes.memmove(at + GATE_SIZE * done, at, GATE_SIZE * n)
            done += n

    def address(mm):
        view = ctypes.c_char.from_buffer(mm)
        try:
            return ctypes.addressof(view)
        finally:
            del view                # no export kept: the mapping stays closable

    return take, unlock, init, address


class Gates:
    def __init__(self, mm, at, slots):
        global _calls
        if _calls is None:
            _calls = _ctypes_calls()
        self._take_at, self._give_at, self._init, address = _calls
        self.mm, self.at, self.slots = mm, at, slots
        self.base = address(mm) + at

    @staticmethod
    def size(slots):
        return GATE_SIZE * slots

    def initialize(self):
        """Every gate unlocked, every counter 0 (no process may hold one yet)."""
        self.mm[self.at:self.at + GATE_SIZE * self.slots] = bytes(GATE_SIZE * self.slots)
        self._init(self.base, self.slots)

    def _slots(self, inos):
        if len(inos) == 1:                  # most holds: no set, no sort
            for ino in inos:
                return (ino % self.slots,)
        return sorted({ino % self.slots for ino in inos})

    def take(self, slot):
        if self.base is None:
            raise OSError(errno.EBADF, "the volume's shared log is closed")
        r = self._take_at(self.base + GATE_SIZE * slot)
        if r:
            raise OSError(r, f"gate {slot}: {errno.errorcode.get(r, r)}")

    def give(self, slot):
        self._give_at(self.base + GATE_SIZE * slot)

    def close(self, inos):
        """Under the inodes' data locks, before their mapping or bytes change: overwrites in
        C under way have ended, later ones see the counter moved."""
        for slot in self._slots(inos):
            at = self.at + GATE_SIZE * slot + COUNT_AT
            self.take(slot)
            struct.pack_into("<Q", self.mm, at, struct.unpack_from("<Q", self.mm, at)[0] + 1)
            self.give(slot)

    def hold(self, inos):
        """Keep overwrites in C out until release() (a read in Python)."""
        taken = []
        try:
            for slot in self._slots(inos):
                self.take(slot)
                taken.append(slot)
        except BaseException:
            for slot in reversed(taken):
                self.give(slot)
            raise

    def release(self, inos):
        for slot in reversed(self._slots(inos)):
            self.give(slot)

    def detach(self):
        """Before the mapping goes: a late taker gets EBADF, not a fault."""
        self.base = None

    def count(self, ino):
        return struct.unpack_from("<Q", self.mm, self.at + GATE_SIZE * (ino % self.slots) + COUNT_AT)[0]
