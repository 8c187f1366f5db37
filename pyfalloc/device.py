"""The block device: a sparse image file read and written at physical byte offsets.

Block 0 holds the superblock (geometry and the UUID that binds the image to its
metadata). Discard punches holes in the image so that the host really gets the space
back, which is what a thin-provisioned device does with a discarded granule.
"""
import ctypes
import errno
import os
import struct
import uuid as uuidlib

from .errors import FormatError, FsError
from .units import format_size, is_pow2

MAGIC = b"PYFALLOC"
VERSION = 1
# magic, version, uuid, block size, granule, group size, block count
_SUPER = struct.Struct("<8sI16sIQQQ")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_HOST_PUNCH = 0x02 | 0x01          # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE on the host


def check_geometry(size, block_size, granule, group_size):
    """Refuse a geometry a block device could not have, naming the offending value."""
    for name, value in (("block size", block_size), ("granule", granule), ("group size", group_size)):
        if not is_pow2(value):
            raise FsError(errno.EINVAL, f"{name} {value} is not a power of two")
    if not 512 <= block_size <= 65536:
        raise FsError(errno.EINVAL, f"block size {block_size} is outside 512..64K")
    if granule < block_size:
        raise FsError(errno.EINVAL, f"granule {format_size(granule)} is smaller than the block size")
    if group_size < block_size:
        raise FsError(errno.EINVAL, f"group size {format_size(group_size)} is smaller than the block size")
    if size % block_size:
        raise FsError(errno.EINVAL, f"size {size} is not a multiple of the block size {block_size}")
    if size < 16 * block_size:
        raise FsError(errno.EINVAL, f"size {size} is below 16 blocks")


class Device:
    def __init__(self, path, fd, block_size, granule, group_size, nblocks, uuid):
        self.path = path
        self.fd = fd
        self.block_size = block_size
        self.granule = granule
        self.group_size = group_size
        self.nblocks = nblocks
        self.uuid = uuid

    @property
    def size(self):
        return self.nblocks * self.block_size

    @classmethod
    def create(cls, path, size, block_size=4096, granule=1 << 20, group_size=128 << 20):
        check_geometry(size, block_size, granule, group_size)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        os.ftruncate(fd, size)
        dev = cls(path, fd, block_size, granule, group_size, size // block_size, uuidlib.uuid4().bytes)
        header = _SUPER.pack(MAGIC, VERSION, dev.uuid, block_size, granule, group_size, dev.nblocks)
        os.pwrite(fd, header.ljust(block_size, b"\0"), 0)
        os.fsync(fd)
        return dev

    @classmethod
    def open(cls, path):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FormatError(f"image {path} does not exist") from None
        head = os.pread(fd, _SUPER.size, 0)
        if len(head) < _SUPER.size or head[:8] != MAGIC:
            os.close(fd)
            raise FormatError(f"{path} is not a pyfalloc image (no superblock)")
        magic, version, uuid, bs, granule, group, nblocks = _SUPER.unpack(head)
        if version != VERSION:
            os.close(fd)
            raise FormatError(f"{path}: unsupported image version {version}")
        if os.fstat(fd).st_size < nblocks * bs:
            os.close(fd)
            raise FormatError(f"{path} is shorter than its superblock says ({nblocks} blocks)")
        return cls(path, fd, bs, granule, group, nblocks, uuid)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def pread(self, length, pos):
        data = os.pread(self.fd, length, pos)
        if len(data) != length:
            raise FsError(errno.EIO, f"short read at {pos}")
        return data

    def preadinto(self, view, pos):
        """Fill a writable memoryview from the image at pos, without a copy in between."""
        while view:
            n = os.preadv(self.fd, [view], pos)
            if n == 0:
                raise FsError(errno.EIO, f"short read at {pos}")
            view = view[n:]
            pos += n

    def pwritev(self, parts, pos):
        """Write buffers back to back at pos in as few calls as the kernel allows."""
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        while views:
            n = os.pwritev(self.fd, views, pos)
            pos += n
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if views and n:
                views[0] = views[0][n:]

    def pwrite(self, data, pos):
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, pos)
            view = view[n:]
            pos += n

    def copy(self, src, dst, length):
        """Copy bytes between two places of the image, in the kernel where it can."""
        while length:
            try:
                n = os.copy_file_range(self.fd, self.fd, length, src, dst)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                n = 0
            if n <= 0:
                self.pwrite(self.pread(length, src), dst)
                return
            src, dst, length = src + n, dst + n, length - n

    def zero(self, pos, length):
        """Make bytes read as zeros, releasing host space where it can (write-zeroes with unmap)."""
        if _libc.fallocate(self.fd, _HOST_PUNCH, pos, length) != 0:
            e = ctypes.get_errno()
            if e not in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise FsError(e, "zeroing the image")
            self.pwrite(bytes(length), pos)

    def discard(self, pos, length):
        assert pos % self.granule == 0 and length % self.granule == 0 or pos + length == self.size
        self.zero(pos, length)

    def flush(self):
        os.fdatasync(self.fd)

    def host_allocated_bytes(self):
        return os.fstat(self.fd).st_blocks * 512
