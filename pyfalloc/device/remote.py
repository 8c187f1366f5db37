"""What the network backends (nbd.py, rbd.py) share: hostio.HostFile's interface over a
device that has no host descriptor and a size its server gives. A backend supplies its
connection (_connect, redone in a forked child, which sets _errors: its library's exception
classes), _read, _write, _error (such an exception as an FsError), size, identity_key, sync,
punch, discard and close."""
import errno

from pyfalloc.errors import FsError
from pyfalloc.forks import at_fork_in_child


def _never_release(obj):
    import ctypes                   # only a forked child of a network device's user needs it
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


class RemoteFile:
    fd = None                       # no host descriptor: the C fast paths stay off
    shared = True                   # other hosts may reach it: block 0 holds the writer's claim
    kind = "device"

    def __init__(self, location, readonly=False):
        self.path = location
        self.readonly = readonly
        before = set(vars(self))
        self._connect()
        self._connection = set(vars(self)) - before     # what _connect set
        at_fork_in_child(self)

    def _after_fork(self):
        # the parent's connection is the parent's: its library's threads, which serve it, do
        # not exist in the child, and closing it would wait on them for ever (librbd) or end
        # the parent's session (libnbd). The child keeps those objects unreleased, through
        # its exit too, and connects on its first use of the device: a child that only
        # execs (a shell's) never pays for a connection.
        for name in self._connection:
            _never_release(self.__dict__.pop(name, None))
        self._forked = True

    def __getattr__(self, name):
        """a connection's attribute in a forked child that has not connected yet"""
        if name.startswith("__") or not self.__dict__.get("_forked"):
            raise AttributeError(name)
        self._forked = False
        self._connect()
        return getattr(self, name)

    def _io(self, what, fn, *args):
        try:
            return fn(*args)
        except self._errors as e:
            raise self._error(e, what) from None

    def identity(self):
        """A name for the device on this machine: a digest of what locates it."""
        # imported here: a process whose first image call comes at exit (stdio flushed by
        # exit handlers) cannot load OpenSSL then, and image files never need it
        import hashlib
        return f"{self.kind}-" + hashlib.sha256(self.identity_key().encode()).hexdigest()[:16]

    def mode(self):
        return 0o600                # the metadata's owner decides who may use it

    def pread(self, length, pos):
        length = max(0, min(length, self.size() - pos))
        return self._io(f"read at {pos}", self._read, length, pos) if length else b""

    def preadinto(self, view, pos):
        data = self.pread(len(view), pos)
        if len(data) != len(view):
            raise FsError(errno.EIO, f"short read at {pos} on {self.path}")
        view[:] = data

    def pwritev(self, parts, pos):
        self.pwrite(b"".join(bytes(p) for p in parts if len(p)), pos)

    def pwrite(self, data, pos):
        if len(data):
            self._io(f"write at {pos}", self._write, bytes(data), pos)

    def copy(self, src, dst, length):
        self.pwrite(self.pread(length, src), dst)

    def read_ahead(self, pos, length):
        """Nothing here caches an export's bytes: the server's cache is its own."""

    def truncate(self, size):
        if size != self.size():
            raise FsError(errno.EINVAL, f"{self.path} has the size its server gives ({self.size()} bytes)")
