"""`Volume`: the in-process Python API over the syscall layer.

    with Volume.mkfs("disk.img", "1G") as vol:
        fd = vol.open("/a", os.O_RDWR | os.O_CREAT)
        vol.fallocate2(fd, 0, 0, 1 << 20, physical=64 << 20)
        vol.fiemap(fd)
"""
import errno
import os

from pyfalloc.device.image import Device, check_geometry, is_device_uri
from pyfalloc.errors import FormatError, FsError
from pyfalloc.fs import paths
from pyfalloc.fs.filesystem import FileSystem
from pyfalloc.store import Store, meta_path
from pyfalloc.store.journal import journal_of
from pyfalloc.syscalls.calls import Syscalls
from pyfalloc.units import parse_size


def _writable(image, meta):
    """Whether this user may change the volume: its files and the metadata's directory (a
    new checkpoint is a rename) writable, on a mount that is not read-only."""
    files = (meta, journal_of(meta), os.path.dirname(os.path.abspath(meta)))
    if not is_device_uri(image):
        files = (image,) + files
    return all(os.access(p, os.W_OK) for p in files if os.path.exists(p) or p == files[-1])


def locate_meta(image, meta=None):
    """The checkpoint's path: given, or IMAGE.meta beside an image file. An export's
    metadata is a local file, so it must be named."""
    if meta is not None:
        return os.fspath(meta)
    if is_device_uri(image):
        raise FsError(errno.EINVAL, f"{image}: a network device needs --meta PATH (its metadata is a local file)")
    return meta_path(image)


class Volume(Syscalls):
    def __init__(self, image, policy=None, readonly=None, meta=None, mount=paths.DEFAULT_MOUNT):
        """image: an image file, an NBD URI (nbd://HOST[:PORT]/EXPORT,
        nbd+unix:///EXPORT?socket=PATH) or an RBD spec (rbd:POOL/IMAGE). meta: the metadata's path (default IMAGE.meta;
        required for a URI). readonly: None opens read-only when this user may not write
        the volume (or it is on a read-only mount); True always; False insists on writing.
        mount: where the host sees the volume (the shim's prefix), which an absolute
        symbolic link target names it by."""
        self.image = os.fspath(image)
        self.meta = locate_meta(self.image, meta)
        if not is_device_uri(self.image) and not os.path.exists(self.image):
            raise FsError(errno.ENOENT, f"image {self.image} does not exist")
        if readonly is None:
            readonly = not _writable(self.image, self.meta)
        dev = Device.open(self.image, readonly)
        try:
            store = Store(self.meta, dev.uuid, dev.group_size // dev.block_size, dev, readonly)
        except Exception:
            dev.close()
            raise
        try:
            self._check_geometry(dev, store)
        except Exception:
            store.close()
            dev.close()
            raise
        super().__init__(FileSystem(dev, store, policy, mount))
        self.fs.reap()

    @staticmethod
    def _check_geometry(dev, store):
        s = store.settings
        theirs = (s.get("block_size"), s.get("granule"), s.get("group_size"), s.get("nblocks"))
        ours = (dev.block_size, dev.granule, dev.group_size, dev.nblocks)
        if theirs != ours:
            raise FormatError(f"metadata geometry {theirs} does not match the image {ours}")

    @classmethod
    def mkfs(cls, image, size=None, block_size=4096, granule=None, group_size=128 << 20, force=False, meta=None):
        """A new volume on an image file (size needed; granule default 1M) or an export
        (size default: all of it; granule default: what the export reports)."""
        image = os.fspath(image)
        meta = locate_meta(image, meta)
        block_size, group_size = parse_size(block_size), parse_size(group_size)
        size = None if size is None else parse_size(size)
        granule = None if granule is None else parse_size(granule)
        if not is_device_uri(image):
            granule = 1 << 20 if granule is None else granule
            check_geometry(size if size is not None else 16 * block_size, block_size, granule, group_size)
            if not force and (os.path.exists(image) and os.path.getsize(image)):
                raise FsError(errno.EEXIST, f"{image} exists (-F overwrites it; force=True from Python)")
        if not force and os.path.exists(meta):
            raise FsError(errno.EEXIST, f"{meta} exists (-F overwrites it; force=True from Python)")
        if not force and is_device_uri(image):
            try:
                Device.open(image, readonly=True).close()
            except FormatError:
                pass                            # no volume there yet
            else:
                raise FsError(errno.EEXIST, f"{image} holds a pyfalloc volume (-F overwrites it)")
        dev = Device.create(image, size, block_size, granule, group_size)
        try:
            Store.create(meta, dev.uuid, {"uuid": dev.uuid.hex(), "block_size": block_size, "granule": dev.granule,
                                          "group_size": group_size, "nblocks": dev.nblocks}, dev.identity())
            store = Store(meta, dev.uuid, group_size // block_size, dev)
            fs = FileSystem.format(dev, store)
            store.commit()
            fs.close()
        finally:
            dev.close()
        return cls(image, meta=meta)

    @staticmethod
    def unlock(image):
        """Break the claim a host left on a shared device without opening the volume (which
        the claim refuses): the hosts whose claims were broken. Only for a host known gone."""
        dev = Device.open(os.fspath(image), readonly=True)
        try:
            return dev.break_claims()
        finally:
            dev.close()

    # ---- geometry ----------------------------------------------------------------------------
    @property
    def block_size(self):
        return self.fs.bs

    @property
    def granule(self):
        return self.fs.dev.granule

    @property
    def size(self):
        return self.fs.dev.size

    # ---- whole-volume calls ---------------------------------------------------------------------
    # (their modules imported at the call: a process the shim serves pays at its start only
    # for what every call needs)
    def getfsmap(self, low=0, high=None, count=None):
        from pyfalloc.fs import spacemap
        return spacemap.getfsmap(self.fs, low, high, count)

    def ioctl(self, fd, request, arg):
        """ioctl(2) with the kernel's request numbers and structs (FS_IOC_FIEMAP,
        FS_IOC_GETFSMAP, EXT4_IOC_MOVE_EXT, FIGETBSZ); arg is a bytearray updated in place."""
        from pyfalloc.syscalls import ioctl
        return ioctl.ioctl(self, fd, request, arg)

    def free_extents(self):
        """Free space as (physical, length) byte pairs, merged across group boundaries."""
        from pyfalloc.fs import spacemap
        self.fs.meta.fresh()
        return [(p * self.fs.bs, n * self.fs.bs) for p, n in spacemap.free_runs(self.fs)]

    def granules(self):
        from pyfalloc.fs import spacemap
        return spacemap.granule_summary(self.fs)

    def trim(self, start=0, length=None, minlen=0):
        from pyfalloc.fs import spacemap
        return spacemap.trim(self.fs, start, length, minlen)

    def in_use(self, path):
        """Whether any process (this one included) holds the file open, as fuser(1) tells."""
        return self.fs.in_use(self.fs.resolve(path))

    def open_inodes(self):
        """The inode numbers that any process holds open, in one pass (what fuser and lsof
        gather from /proc)."""
        self.fs.meta.fresh()
        return self.fs.open_inodes()

    def fsck(self):
        from pyfalloc.fs.fsck import fsck
        self.fs.reap()
        return fsck(self.fs)

    # ---- conveniences ---------------------------------------------------------------------------
    def read_file(self, path):
        fd = self.open(path)
        try:
            return self.pread(fd, self.fstat(fd).st_size, 0)
        finally:
            self.close(fd)

    def write_file(self, path, data):
        fd = self.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            return self.pwrite(fd, data, 0)
        finally:
            self.close(fd)

    def fiemap_path(self, path):
        fd = self.open(path)
        try:
            return self.fiemap(fd)
        finally:
            self.close(fd)

    def umount(self):
        """Close every file, make what this process changed durable, let go of the volume."""
        for fd in list(self.files):
            self.close(fd)
        self.fs.meta.commit_if_mine()
        self.fs.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.umount()
