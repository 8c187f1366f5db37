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

from pyfalloc.device.remote import RemoteFile
from pyfalloc.errors import FsError
from pyfalloc.forks import forget_fork


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


class RbdFile(RemoteFile):
    kind = "rbd"

    def __init__(self, spec, readonly=False):
        self.pool, self.name, self.options = parse_spec(spec)
        super().__init__(spec, readonly)

    def _connect(self):
        rados, rbd = _bindings()
        self.rbd = rbd
        self._errors = rbd.Error
        conf = self.options.get("conf") or os.environ.get("CEPH_CONF") or ""
        rid = self.options.get("id") or os.environ.get("PYFALLOC_CEPH_ID") or None
        try:
            self.cluster = rados.Rados(conffile=conf, rados_id=rid)
            self.cluster.connect(timeout=30)
            self.ioctx = self.cluster.open_ioctx(self.pool)
            self.img = rbd.Image(self.ioctx, self.name, read_only=self.readonly)
        except (rados.Error, rbd.Error) as e:
            raise FsError(getattr(e, "errno", None) or errno.EIO, f"{self.path}: {e}") from None

    # ---- what the image offers ---------------------------------------------------------------------
    def size(self):
        return self.img.size()

    def identity_key(self):
        return f"{self.cluster.get_fsid()}/{self.pool}/{self.name}"

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
    def _error(self, e, what):
        return FsError(getattr(e, "errno", None) or errno.EIO, f"RBD {what}: {e}")

    def _read(self, length, pos):
        return self.img.read(pos, length)

    def _write(self, data, pos):
        self.img.write(data, pos)

    def punch(self, pos, length):
        """Zeros that need no space: a discarded range of an RBD image reads as zeros."""
        self._io(f"discard at {pos}", self.img.discard, pos, length)

    def discard(self, pos, length):
        self.punch(pos, length)

    def sync(self):
        self._io("flush", self.img.flush)

    def close(self):
        forget_fork(self)
        if getattr(self, "img", None) is not None:
            self.img.close()
            self.ioctx.close()
            self.cluster.shutdown()
            self.img = None
