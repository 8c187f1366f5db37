"""ioctl(2) on volume files: the kernel's request numbers and struct layouts, for fronts
that hold the caller's raw argument memory (the shim) and for tools that want the ABI
itself (the compactor). `arg` is a mutable buffer, updated in place as the kernel would.
"""
import errno
import os
import struct

from pyfalloc import uapi
from pyfalloc.errors import FsError
from pyfalloc.fs.perms import CAP_SYS_ADMIN
from pyfalloc.syscalls.caps import capable

FIEMAP_FLAG_XATTR = 0x2        # the xattr's mapping: there are no xattrs here, so none
FIEMAP_FLAG_CACHE = 0x4        # ext4's: load the extent tree first (nothing to load here)
FIEMAP_FLAGS_COMPAT = uapi.FIEMAP_FLAG_SYNC | FIEMAP_FLAG_XATTR
FIEMAP_MAX_EXTENTS = 0xFFFFFFFF // uapi.FIEMAP_EXTENT.size
_KEY_AT = uapi.FSMAP_HEAD.size
_INT = struct.Struct("=i")


def ioctl(sc, fd, request, arg):
    """Serve one request on fd of Syscalls sc; returns the ioctl's return value."""
    if request == uapi.EXT4_IOC_MOVE_EXT:
        return _move_ext(sc, fd, arg)
    if request == uapi.FS_IOC_FIEMAP:
        return _fiemap(sc, fd, arg)
    if request == uapi.FS_IOC_GETFSMAP:
        return _getfsmap(sc, fd, arg)
    if request == uapi.FIGETBSZ:
        sc._file(fd)
        _INT.pack_into(arg, 0, sc.fs.bs)
        return 0
    if request == uapi.FS_IOC_GETFLAGS:
        _need(arg, _INT.size)
        _INT.pack_into(arg, 0, sc.getflags(fd))
        return 0
    if request == uapi.FS_IOC_SETFLAGS:
        _need(arg, _INT.size)
        sc.setflags(fd, _INT.unpack_from(arg)[0])
        return 0
    if request == uapi.FS_IOC_FSGETXATTR:
        _need(arg, uapi.FSXATTR.size)
        uapi.FSXATTR.pack_into(arg, 0, *sc.getxattr_fs(fd))
        return 0
    if request == uapi.FS_IOC_FSSETXATTR:
        _need(arg, uapi.FSXATTR.size)
        sc.setxattr_fs(fd, *uapi.FSXATTR.unpack_from(arg))
        return 0
    if request == uapi.FITRIM:
        return _fitrim(sc, fd, arg)
    if request in _PREALLOCATE:
        return _preallocate(sc, fd, _PREALLOCATE[request], arg)
    if request == uapi.FIONREAD:
        _need(arg, _INT.size)
        _INT.pack_into(arg, 0, sc.unread(fd))
        return 0
    sc._file(fd)
    if request in (uapi.FICLONE, uapi.FICLONERANGE, uapi.FIDEDUPERANGE):
        raise FsError(errno.EOPNOTSUPP, "no shared extents (ext4 answers the same)")
    raise FsError(errno.ENOTTY, f"ioctl {request:#x} is not served")


_PREALLOCATE = {uapi.FS_IOC_RESVSP64: uapi.FALLOC_FL_KEEP_SIZE,
                uapi.FS_IOC_UNRESVSP64: uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE}


def _preallocate(sc, fd, mode, arg):
    """The kernel's ioctl_preallocate: l_start from l_whence, then vfs_fallocate."""
    _need(arg, uapi.XFS_FLOCK64.size)
    _, whence, start, length, _, _ = uapi.XFS_FLOCK64.unpack_from(arg)
    if whence == os.SEEK_CUR:
        start += sc.lseek(fd, 0, os.SEEK_CUR)
    elif whence == os.SEEK_END:
        start += sc.fstat(fd).st_size
    elif whence != os.SEEK_SET:
        raise FsError(errno.EINVAL, f"l_whence {whence}")
    sc.fallocate(fd, mode, start, length)
    return 0


def _fitrim(sc, fd, arg):
    """FITRIM on any file of the volume, as fstrim(8) asks it of the mount point: ext4's
    checks (CAP_SYS_ADMIN, a read-only volume, the range), then the granules wholly free
    are discarded; len comes back as the bytes discarded."""
    sc._file(fd)
    if not capable(CAP_SYS_ADMIN):
        raise FsError(errno.EPERM, "FITRIM needs CAP_SYS_ADMIN")
    sc.fs.check_writable()
    _need(arg, uapi.FSTRIM_RANGE.size)
    start, length, minlen = uapi.FSTRIM_RANGE.unpack_from(arg)
    if minlen > sc.fs.dev.group_size:
        raise FsError(errno.EINVAL, f"minlen {minlen} is larger than a group")
    from pyfalloc.fs import spacemap
    done = spacemap.trim(sc.fs, start, length, minlen)
    uapi.FSTRIM_RANGE.pack_into(arg, 0, start, done["trimmed_bytes"], minlen)
    return 0


def _need(arg, size):
    if len(arg) < size:
        raise FsError(errno.EFAULT, f"argument buffer of {len(arg)} bytes, {size} needed")


def _move_ext(sc, fd, arg):
    _need(arg, uapi.MOVE_EXTENT.size)
    reserved, donor_fd, orig_start, donor_start, length, _ = uapi.MOVE_EXTENT.unpack_from(arg)
    try:
        moved = sc.move_extent(fd, donor_fd, orig_start, donor_start, length)
    except FsError as e:
        struct.pack_into("=Q", arg, 32, getattr(e, "moved_len", 0))
        raise
    struct.pack_into("=Q", arg, 32, moved)
    return 0


def _fiemap(sc, fd, arg):
    _need(arg, uapi.FIEMAP_HEAD.size)
    start, length, flags, _, count, _ = uapi.FIEMAP_HEAD.unpack_from(arg)
    if count > FIEMAP_MAX_EXTENTS:
        raise FsError(errno.EINVAL, "fm_extent_count too large")
    flags &= ~FIEMAP_FLAG_CACHE     # as ext4, which clears it before any check
    if flags & ~FIEMAP_FLAGS_COMPAT:
        struct.pack_into("=I", arg, 16, flags & ~FIEMAP_FLAGS_COMPAT)
        raise FsError(errno.EBADR, f"unsupported fm_flags {flags & ~FIEMAP_FLAGS_COMPAT:#x}")
    if length == 0:
        raise FsError(errno.EINVAL, "fm_length is 0")
    if start > sc.fs.max_bytes:
        raise FsError(errno.EFBIG, "fm_start past the maximum file size")
    if flags & uapi.FIEMAP_FLAG_SYNC:
        sc.fsync(fd)
    extents = [] if flags & FIEMAP_FLAG_XATTR else sc.fiemap(fd, start, length)
    # the header goes back with the flags the filesystem handled cleared, as ext4 clears them
    struct.pack_into("=I", arg, 16, flags & ~FIEMAP_FLAG_XATTR)
    if count == 0:
        struct.pack_into("=I", arg, 20, len(extents))
        return 0
    _need(arg, uapi.FIEMAP_HEAD.size + count * uapi.FIEMAP_EXTENT.size)
    extents = extents[:count]
    for i, e in enumerate(extents):
        uapi.FIEMAP_EXTENT.pack_into(arg, uapi.FIEMAP_HEAD.size + i * uapi.FIEMAP_EXTENT.size,
                                     e.logical, e.physical, e.length, e.flags)
    struct.pack_into("=I", arg, 20, len(extents))
    return 0


def _getfsmap(sc, fd, arg):
    size = uapi.FSMAP_HEAD.size + 2 * uapi.FSMAP_REC.size
    _need(arg, size)
    sc._file(fd)
    iflags, _, count, _ = uapi.FSMAP_HEAD.unpack_from(arg)
    if iflags or any(arg[16:_KEY_AT]):
        raise FsError(errno.EINVAL, "fmh_iflags and reserved fields must be 0")
    _, _, lphys, _, _, llen = uapi.FSMAP_REC.unpack_from(arg, _KEY_AT)
    _, _, hphys, _, _, _ = uapi.FSMAP_REC.unpack_from(arg, _KEY_AT + uapi.FSMAP_REC.size)
    dev_end = sc.fs.nblocks * sc.fs.bs
    low = lphys + llen                       # the low key is the last record already seen
    if low >= dev_end or hphys < low:
        struct.pack_into("=I", arg, 12, 0)
        return 0
    high = min(hphys, dev_end - 1)
    records = sc.getfsmap(low, high, None if count == 0 else count)
    if count == 0:
        struct.pack_into("=I", arg, 12, len(records))
        return 0
    _need(arg, size + count * uapi.FSMAP_REC.size)
    for i, r in enumerate(records):
        uapi.FSMAP_REC.pack_into(arg, size + i * uapi.FSMAP_REC.size, 0, r.flags, r.physical, r.owner,
                                 r.offset, r.length)
    struct.pack_into("=I", arg, 12, len(records))
    return 0
