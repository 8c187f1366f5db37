"""The shared log: changes every process of the machine sees at once, in order.

A file in /dev/shm (memory, never written to disk) per volume, mapped by every process
that has the volume open: a header, a table of change counters by inode (moved after every
change of an inode is published: what a process learnt of a file holds while its counter
stays, whatever else changes), the gates and the inode locks by the same slots (gates.py,
fs/locks.py), then the change frames since the volume was first opened after boot. A
process keeps its own copy of the tables and applies the frames past its position before
it reads. Nothing here survives a power cut, and nothing needs to: what must is in the
journal (journal.py), written at commit.

The writer lock, held while a change is made (and published by moving `tail` last) or
while a process waits for a change under way, is a mutex in the header (a one-slot table
of gates.py's, which the shim's C takes too): every change takes it, and two fcntl calls
per change cost more than the rest of a small change's locking. The other locks are
open-file-description locks, which the kernel drops with their holder's descriptor: on byte
0, exclusive while a process opens the volume (the writer mutex is made there, before
anyone can take it); on byte 1, shared by every user of the volume, so the last one to
leave knows it and removes the file; on byte 2, exclusive while a commit writes the
journal.
"""
import errno
import fcntl
import mmap
import os
import struct

from pyfalloc.errors import FsError
from pyfalloc.store.gates import GATE_SIZE, Gates

SHM_DIR = "/dev/shm"
MAGIC = b"PYFASHM8"
GENS_AT, GEN_SLOTS = 4096, 8192     # a change counter per slot of inodes (ino % GEN_SLOTS)
GATES_AT = GENS_AT + 8 * GEN_SLOTS
INODE_LOCKS_AT = GATES_AT + Gates.size(GEN_SLOTS)     # fs/locks.py: the inode locks, by the same slots
LOG_START = INODE_LOCKS_AT + Gates.size(GEN_SLOTS)
CAPACITY = 1 << 30          # address space only: tmpfs stores what is written
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
OPENING = 0                 # lock byte of a process opening the volume
USERS = 1                   # lock byte shared by the users of the volume
COMMITTER = 2               # lock byte of the commit writing the journal (Store.commit)
_FLOCK = "@hhqqi4x"

WRITER_AT = 192             # the writer mutex, past the header fields (shim/fastread.c: SHM_WRITER)
# header fields: name -> offset (all u64 but dirty_since, a double)
_FIELDS = {"shm_epoch": 24, "tail": 32, "durable": 40, "ckpt_epoch": 48, "ckpt_nonce": 56,
           "ckpt_tail": 64, "journal_len": 72, "dirty_since": 88, "next_move": 96,
           "commit_seq": 104, "copies": 112, "reaping": 120, "flush_begun": 128, "flush_done": 136,
           "pid_ns": 144, "journal_room": 152}


_Q, _D, _QQ = struct.Struct("<Q"), struct.Struct("<d"), struct.Struct("<QQ")
_TAIL = _FIELDS["tail"]


def _pid_namespace():
    return os.stat("/proc/self/ns/pid").st_ino


def shm_path(identity, uuid):
    """One log per volume and device (identity: the device's, see Device.identity): a copy
    of an image is another volume here."""
    return os.path.join(SHM_DIR, f"pyfalloc-{uuid.hex()}-{identity}")


def ofd_lock(fd, kind, start, length=1, wait=True):
    """An open-file-description lock; False when wait is off and another holds it."""
    try:
        fcntl.fcntl(fd, F_OFD_SETLKW if wait else F_OFD_SETLK,
                    struct.pack(_FLOCK, kind, os.SEEK_SET, start, length, 0))
        return True
    except BlockingIOError:
        return False
    except PermissionError:         # EACCES: some kernels answer a conflict so
        if wait:
            raise
        return False


def ofd_conflict(fd, kind, start, length=1):
    """Whether another description holds a lock that would block `kind` on the range."""
    out = fcntl.fcntl(fd, F_OFD_GETLK, struct.pack(_FLOCK, kind, os.SEEK_SET, start, length, 0))
    return struct.unpack(_FLOCK, out)[0] != fcntl.F_UNLCK


def ofd_holders(fd, kind, start, length):
    """[start, end) of every range in [start, start+length) that another description holds
    in a way that blocks `kind`: GETLK names one conflicting lock, not necessarily the lowest,
    so both sides of each answer are asked again (as many questions as ranges, times a log)."""
    out, todo = [], [(start, start + length)]
    while todo:
        lo, hi = todo.pop()
        if lo >= hi:
            continue
        r = struct.unpack(_FLOCK, fcntl.fcntl(fd, F_OFD_GETLK, struct.pack(_FLOCK, kind, os.SEEK_SET, lo, hi - lo, 0)))
        if r[0] == fcntl.F_UNLCK:
            continue
        a = max(lo, r[2])
        b = hi if r[3] == 0 else min(hi, r[2] + r[3])
        out.append((a, b))
        todo += [(lo, a), (b, hi)]
    return out


class SharedLog:
    def __init__(self, identity, uuid, private=False, mode=0o600):
        """private: a log of this process alone, in memory (a read-only opening, which
        sees the volume as its last commit left it)."""
        self.uuid = uuid
        self.shared_path = shm_path(identity, uuid)
        if private:
            self.fd = os.memfd_create("pyfalloc-readonly", os.MFD_CLOEXEC)
            self.path = f"/proc/self/fd/{self.fd}"
            ofd_lock(self.fd, fcntl.F_RDLCK, USERS)
        else:
            self.path = self.shared_path
        while not private:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            ofd_lock(self.fd, fcntl.F_RDLCK, USERS)
            if os.fstat(self.fd).st_nlink:
                # whoever may write the image may use its log (umask aside)
                if os.fstat(self.fd).st_uid == os.geteuid():
                    os.fchmod(self.fd, mode & 0o666 | 0o600)
                break
            os.close(self.fd)           # the last user removed it while this one waited
        if os.fstat(self.fd).st_size < LOG_START + CAPACITY:
            os.ftruncate(self.fd, LOG_START + CAPACITY)
        self.mm = mmap.mmap(self.fd, LOG_START + CAPACITY)
        self.gates = Gates(self.mm, GATES_AT, GEN_SLOTS)
        self.writer = Gates(self.mm, WRITER_AT, 1)
        self.inode_locks = Gates(self.mm, INODE_LOCKS_AT, GEN_SLOTS)

    def reopen_lock(self):
        """After fork: a description of its own, or parent and child would share locks."""
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        ofd_lock(fd, fcntl.F_RDLCK, USERS)
        os.close(self.fd)
        self.fd = fd

    def last_user(self):
        """Whether no other process uses the volume; if so, none can join until close()."""
        return ofd_lock(self.fd, fcntl.F_WRLCK, USERS, wait=False)

    def remove(self):
        os.unlink(self.path)

    # ---- header ------------------------------------------------------------------------------
    def initialized(self):
        return self.mm[:8] == MAGIC and self.mm[8:24] == self.uuid

    def prepare_writer(self):
        """Under the opening lock, before the writer lock is first taken: a log no process
        has set up has a writer mutex of zeros (not a shared one), made here. Every user
        of an initialized log has passed here, so none can hold it.

        The mutexes name their holder by thread id, which another PID namespace numbers
        afresh: a process there could take as its own a lock that a thread with its number
        holds here. Such a process is refused while the log's users are of another one."""
        if self.initialized() and self.get("pid_ns") != _pid_namespace():
            if not self.last_user():
                raise FsError(errno.EBUSY, "the volume is in use from another PID namespace, whose "
                                           "processes its locks cannot tell from this one's")
            ofd_lock(self.fd, fcntl.F_RDLCK, USERS)    # a user's hold again
            self.mm[:8] = bytes(8)      # left by users gone: made again for this namespace
        if not self.initialized():
            self.writer.initialize()

    def initialize(self):
        """Under the writer lock (held: not made again)."""
        self.mm[:WRITER_AT] = bytes(WRITER_AT)
        self.mm[WRITER_AT + GATE_SIZE:GATES_AT] = bytes(GATES_AT - WRITER_AT - GATE_SIZE)
        self.gates.initialize()
        self.inode_locks.initialize()
        self.put("pid_ns", _pid_namespace())
        self.mm[8:24] = self.uuid
        self.mm[:8] = MAGIC

    def get(self, name):
        if name == "dirty_since":
            return _D.unpack_from(self.mm, 88)[0]
        return _Q.unpack_from(self.mm, _FIELDS[name])[0]

    def put(self, name, value):
        (_D if name == "dirty_since" else _Q).pack_into(self.mm, _FIELDS[name], value)

    def position(self):
        """(shm_epoch, tail): where the log stands; one read of the mapping."""
        return _QQ.unpack_from(self.mm, 24)

    # ---- change counters by inode ---------------------------------------------------------------
    def generation(self, ino):
        return _Q.unpack_from(self.mm, GENS_AT + 8 * (ino % GEN_SLOTS))[0]

    def bump(self, inos):
        """After the frames that change these inodes are published (under the write lock).
        Returns {ino: its counter now}."""
        mm = self.mm
        now = {}
        for ino in inos:
            at = GENS_AT + 8 * (ino % GEN_SLOTS)
            now[ino] = n = _Q.unpack_from(mm, at)[0] + 1
            _Q.pack_into(mm, at, n)
        return now

    # ---- frames ------------------------------------------------------------------------------
    def read(self, start, end):
        return self.mm[LOG_START + start:LOG_START + end]

    def append(self, blob):
        """Write frames past the tail, then move the tail: readers never see half of them.
        Returns where they start."""
        mm = self.mm
        tail = _Q.unpack_from(mm, _TAIL)[0]
        end = tail + len(blob)
        if LOG_START + end > len(mm):
            raise OSError(28, "shared log full")          # ENOSPC; checkpoints keep it short
        mm[LOG_START + tail:LOG_START + end] = blob
        _Q.pack_into(mm, _TAIL, end)
        return tail

    # ---- locks -------------------------------------------------------------------------------
    def opening(self):
        return _Holding(lambda: ofd_lock(self.fd, fcntl.F_WRLCK, OPENING),
                        lambda: ofd_lock(self.fd, fcntl.F_UNLCK, OPENING))

    def writing(self):
        """The writer lock as a context (changes take it with lock() and unlock())."""
        return _Holding(self.lock, self.unlock)

    def committing(self):
        return _Holding(self.lock_commit, self.unlock_commit)

    def lock(self):
        self.writer.take(0)

    def unlock(self):
        self.writer.give(0)

    def lock_commit(self, wait=True):
        return ofd_lock(self.fd, fcntl.F_WRLCK, COMMITTER, wait=wait)

    def unlock_commit(self):
        ofd_lock(self.fd, fcntl.F_UNLCK, COMMITTER)

    def close(self):
        self.gates.detach()
        self.inode_locks.detach()
        self.writer.detach()
        try:
            self.mm.close()
        except BufferError:         # a view of the mapping is still alive: unmapped at exit
            pass
        os.close(self.fd)


class _Holding:
    """A lock taken and given back as a context (a class: contextlib's import would cost
    every served process's start)."""
    __slots__ = ("take", "give")

    def __init__(self, take, give):
        self.take, self.give = take, give

    def __enter__(self):
        self.take()

    def __exit__(self, *exc):
        self.give()
