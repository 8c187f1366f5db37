"""A device that is a Ceph RBD image, through librbd's Python binding (python3-rbd): reads,
writes, flush and discard are librbd's own, and the granule is the image's object size.

IMAGE is `rbd:POOL/NAME`, qemu's syntax, with optional `:conf=PATH` and `:id=NAME`; the
cluster is otherwise the usual environment's (CEPH_CONF, or /etc/ceph/ceph.conf).

One host writes: the claim in block 0 that image.py keeps for every shared device.
(librbd's advisory locks share their lock with the exclusive-lock feature, so an advisory
lock held open would stall every write; the exclusive lock itself passes between clients
write by write, which keeps two writers' requests apart but not two hosts' metadata.)
"""
import errno
import os

from pyfalloc.errors import FsError
from pyfalloc.forks import at_fork_in_child, forget_fork


def is_rbd_spec(location):
    return isinstance(location, str) and location.startswith("rbd:")


def parse_spec(spec):
    """rbd:POOL/NAME[:key=value...] -> (pool, name, options)."""
    body = spec[len("rbd:"):]
    parts = body.split(":")
    pool, _, name = parts[0].partition("/")
    if not pool or not name:
        raise FsError(errno.EINVAL, f"{spec}: expected rbd:POOL/IMAGE")
    options = {}
    for p in parts[1:]:
        key, eq, value = p.partition("=")
        if not eq or key not in ("conf", "id"):
            raise FsError(errno.EINVAL, f"{spec}: unknown option {p!r} (conf=PATH, id=NAME)")
        options[key] = value
    return pool, name, options


def _bindings():
    try:
        import rados
        import rbd
    except ImportError:
        raise FsError(errno.EPROTONOSUPPORT, "an RBD device needs Ceph's Python bindings "
                                             "(Debian: apt-get install python3-rbd python3-rados)") from None
    return rados, rbd


class RbdFile:
    fd = None                       # no host descriptor: the C fast paths stay off

    def __init__(self, spec, readonly=False):
        self.path = spec
        self.readonly = readonly
        self.pool, self.name, self.options = parse_spec(spec)
        self._connect()
        at_fork_in_child(self)

    def _connect(self):
        rados, rbd = _bindings()
        self.rbd = rbd
        conf = self.options.get("conf") or os.environ.get("CEPH_CONF") or ""
        rid = self.options.get("id") or os.environ.get("PYFALLOC_CEPH_ID") or None
        try:
            self.cluster = rados.Rados(conffile=conf, rados_id=rid)
            self.cluster.connect(timeout=30)
            self.ioctx = self.cluster.open_ioctx(self.pool)
            self.img = rbd.Image(self.ioctx, self.name, read_only=self.readonly)
        except (rados.Error, rbd.Error) as e:
            raise FsError(getattr(e, "errno", None) or errno.EIO, f"{self.path}: {e}") from None

    def _after_fork(self):
        self._connect()             # librados handles do not survive fork

    # ---- what the image offers ---------------------------------------------------------------------
    def size(self):
        return self.img.size()

    def identity(self):
        import hashlib              # only here (see nbd.py)
        key = f"{self.cluster.get_fsid()}/{self.pool}/{self.name}"
        return "rbd-" + hashlib.sha256(key.encode()).hexdigest()[:16]

    def granule_hint(self, limit):
        return self.img.stat()["obj_size"]

    def allocated_bytes(self):
        """What the cluster stores for the image (what `rbd du` adds up)."""
        total = [0]

        def note(offset, length, exists):
            if exists:
                total[0] += length
        self.img.diff_iterate(0, self.size(), None, note, whole_object=False)
        return total[0]

    # ---- I/O ------------------------------------------------------------------------------------------
    def _io(self, what, fn, *args):
        try:
            return fn(*args)
        except self.rbd.Error as e:
            raise FsError(getattr(e, "errno", None) or errno.EIO, f"RBD {what}: {e}") from None

    def pread(self, length, pos):
        length = max(0, min(length, self.size() - pos))
        return self._io(f"read at {pos}", self.img.read, pos, length) if length else b""

    def preadinto(self, view, pos):
        data = self.pread(len(view), pos)
        if len(data) != len(view):
            raise FsError(errno.EIO, f"short read at {pos} on {self.path}")
        view[:] = data

    def pwritev(self, parts, pos):
        self.pwrite(b"".join(bytes(p) for p in parts if len(p)), pos)

    def pwrite(self, data, pos):
        if len(data):
            self._io(f"write at {pos}", self.img.write, bytes(data), pos)

    def punch(self, pos, length, _host_punch=None):
        """Zeros that need no space: a discarded range of an RBD image reads as zeros."""
        self._io(f"discard at {pos}", self.img.discard, pos, length)

    def discard(self, pos, length):
        self.punch(pos, length)

    def truncate(self, size):
        if size != self.size():
            raise FsError(errno.EINVAL, f"an RBD device has its image's size ({self.size()} bytes)")

    def sync(self):
        self._io("flush", self.img.flush)

    def close(self):
        forget_fork(self)
        if getattr(self, "img", None) is not None:
            self.img.close()
            self.ioctx.close()
            self.cluster.shutdown()
            self.img = None
