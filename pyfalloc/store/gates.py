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
"""
import ctypes
import errno
import struct

GATE_SIZE = 64              # a cache line each; shim/fastread.c has the same layout
COUNT_AT = 48               # the counter's offset in a gate, past the 40-byte mutex
_MUTEX_SIZE = 40
_PSHARED, _RECURSIVE, _ROBUST = 1, 1, 1

_libc = ctypes.CDLL(None, use_errno=True)
_lock, _unlock, _consistent = _libc.pthread_mutex_lock, _libc.pthread_mutex_unlock, _libc.pthread_mutex_consistent
for _f in (_lock, _unlock, _consistent):
    _f.argtypes, _f.restype = [ctypes.c_void_p], ctypes.c_int


def _prototype():
    """The bytes of an unlocked gate's mutex. glibc's unlocked mutex is plain data with no
    address in it (what a static initializer relies on), so one made by pthread_mutex_init
    is copied into every slot: a log is rebuilt whenever its volume is opened with no other
    user, and 8192 calls through ctypes would add milliseconds to that process's start."""
    attr = ctypes.create_string_buffer(64)
    mutex = ctypes.create_string_buffer(GATE_SIZE)
    if (_libc.pthread_mutexattr_init(attr) or _libc.pthread_mutexattr_setpshared(attr, _PSHARED)
            or _libc.pthread_mutexattr_settype(attr, _RECURSIVE) or _libc.pthread_mutexattr_setrobust(attr, _ROBUST)
            or _libc.pthread_mutex_init(mutex, attr)):
        raise OSError(errno.EINVAL, "pthread_mutex_init failed")
    return mutex.raw[:_MUTEX_SIZE] + bytes(GATE_SIZE - _MUTEX_SIZE)


class Gates:
    def __init__(self, mm, at, slots):
        self.mm, self.at, self.slots = mm, at, slots
        view = ctypes.c_char.from_buffer(mm, at)
        self.base = ctypes.addressof(view)
        del view                    # no export kept: the mapping stays closable

    @staticmethod
    def size(slots):
        return GATE_SIZE * slots

    def initialize(self):
        """Every gate unlocked, every counter 0 (no process may hold one yet)."""
        self.mm[self.at:self.at + GATE_SIZE * self.slots] = _prototype() * self.slots

    def _slots(self, inos):
        return sorted({ino % self.slots for ino in inos})

    def _take(self, slot):
        r = _lock(self.base + GATE_SIZE * slot)
        if r == errno.EOWNERDEAD:   # its holder died: the counter is whole, carry on
            r = _consistent(self.base + GATE_SIZE * slot)
        if r:
            raise OSError(r, f"gate {slot}: {errno.errorcode.get(r, r)}")

    def _give(self, slot):
        _unlock(self.base + GATE_SIZE * slot)

    def close(self, inos):
        """Under the inodes' data locks, before their mapping or bytes change: overwrites in
        C under way have ended, later ones see the counter moved."""
        for slot in self._slots(inos):
            at = self.at + GATE_SIZE * slot + COUNT_AT
            self._take(slot)
            struct.pack_into("<Q", self.mm, at, struct.unpack_from("<Q", self.mm, at)[0] + 1)
            self._give(slot)

    def hold(self, inos):
        """Keep overwrites in C out until release() (a read in Python)."""
        taken = []
        try:
            for slot in self._slots(inos):
                self._take(slot)
                taken.append(slot)
        except BaseException:
            for slot in reversed(taken):
                self._give(slot)
            raise

    def release(self, inos):
        for slot in reversed(self._slots(inos)):
            self._give(slot)

    def count(self, ino):
        return struct.unpack_from("<Q", self.mm, self.at + GATE_SIZE * (ino % self.slots) + COUNT_AT)[0]
