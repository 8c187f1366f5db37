"""`Volume`: the in-process Python API over the syscall layer.

    with Volume.mkfs("disk.img", "1G") as vol:
        fd = vol.open("/a", os.O_RDWR | os.O_CREAT)
        vol.fallocate2(fd, 0, 0, 1 << 20, physical=64 << 20)
        vol.fiemap(fd)
"""
import errno
import os

from . import ioctl as _ioctl, spacemap
from .device import Device, check_geometry
from .errors import FormatError, FsError
from .fs import FileSystem
from .fsck import fsck
from .meta import Meta, meta_path
from .syscalls import Syscalls, process_alive
from .units import parse_size


class Volume(Syscalls):
    def __init__(self, image, policy=None):
        self.image = os.fspath(image)
        dev = Device.open(self.image)
        try:
            meta = Meta.open(self.image, dev.uuid)
        except Exception:
            dev.close()
            raise
        self._check_geometry(dev, meta)
        super().__init__(FileSystem(dev, meta, policy))
        self.fs.reap(process_alive)

    @staticmethod
    def _check_geometry(dev, meta):
        s = meta.settings
        theirs = (s.get("block_size"), s.get("granule"), s.get("group_size"), s.get("nblocks"))
        ours = (dev.block_size, dev.granule, dev.group_size, dev.nblocks)
        if theirs != ours:
            raise FormatError(f"metadata geometry {theirs} does not match the image {ours}")

    @classmethod
    def mkfs(cls, image, size, block_size=4096, granule=1 << 20, group_size=128 << 20, force=False):
        image = os.fspath(image)
        size, block_size = parse_size(size), parse_size(block_size)
        granule, group_size = parse_size(granule), parse_size(group_size)
        check_geometry(size, block_size, granule, group_size)
        if not force and (os.path.exists(image) and os.path.getsize(image) or os.path.exists(meta_path(image))):
            raise FsError(errno.EEXIST, f"{image} exists (use force to overwrite)")
        dev = Device.create(image, size, block_size, granule, group_size)
        meta = Meta.create(image, {"uuid": dev.uuid.hex(), "block_size": block_size, "granule": granule,
                                   "group_size": group_size, "nblocks": dev.nblocks})
        FileSystem.format(dev, meta)
        meta.close()
        dev.close()
        return cls(image)

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
    def getfsmap(self, low=0, high=None, count=None):
        return spacemap.getfsmap(self.fs, low, high, count)

    def ioctl(self, fd, request, arg):
        """ioctl(2) with the kernel's request numbers and structs (FS_IOC_FIEMAP,
        FS_IOC_GETFSMAP, EXT4_IOC_MOVE_EXT, FIGETBSZ); arg is a bytearray updated in place."""
        return _ioctl.ioctl(self, fd, request, arg)

    def free_extents(self):
        """Free space as (physical, length) byte pairs, merged across group boundaries."""
        with self.fs.meta.tx():
            return [(p * self.fs.bs, n * self.fs.bs) for p, n in spacemap.free_runs(self.fs)]

    def granules(self):
        return spacemap.granule_summary(self.fs)

    def trim(self, start=0, length=None, minlen=0):
        return spacemap.trim(self.fs, start, length, minlen)

    def fuser(self, path):
        """Processes holding a file open, as fuser(1) finds them by scanning /proc/*/fd."""
        return self.fs.holders(self.fs.resolve(path), process_alive)

    def fsck(self):
        self.fs.reap(process_alive)
        return fsck(self.fs, process_alive)

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
        for fd in list(self.files):
            self.close(fd)
        self.fs.locks.close()
        self.fs.meta.close()
        self.fs.dev.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.umount()
