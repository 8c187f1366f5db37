"""Numbers and struct layouts of the Linux user ABI that pyfalloc serves.

Values follow include/uapi/linux/{falloc,fiemap,fsmap}.h and fs/ext4/ext4.h; the
fallocate2 syscall number is the one the RFC's syscall tables give.
"""
import struct

SYS_fallocate2 = 486
SYS_fallocate3 = 487          # the portable struct form (pyfalloc.syscalls.abi, cdefs/fallocate2.h)
SYS_fallocate_x86_64 = 285
NO_HINT = (1 << 64) - 1            # fallocate2's "physical == (u64)-1"

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_NO_HIDE_STALE = 0x04
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
FALLOC_FL_WRITE_ZEROES = 0x80
FALLOC_FL_ALLOCATE_RANGE = 0x00
FALLOC_FL_MODE_MASK = (FALLOC_FL_ALLOCATE_RANGE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE
                       | FALLOC_FL_ZERO_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE
                       | FALLOC_FL_WRITE_ZEROES)

# Jan Kara's 2007 allocate() proposal.
ALLOC_FIXED_START = 0x1
ALLOC_FIXED_LEN = 0x2
ALLOC_CONTIGUOUS = 0x4

# inode flags (FS_IOC_GETFLAGS values)
FS_SYNC_FL = 0x8
FS_IMMUTABLE_FL = 0x10
FS_APPEND_FL = 0x20
FS_NODUMP_FL = 0x40
FS_NOATIME_FL = 0x80
FS_DAX_FL = 0x02000000
FS_PROJINHERIT_FL = 0x20000000

# FIEMAP
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DELALLOC = 0x4
FIEMAP_EXTENT_UNWRITTEN = 0x800
FIEMAP_EXTENT_MERGED = 0x1000
FIEMAP_EXTENT_SHARED = 0x2000
FIEMAP_FLAG_NAMES = {
    FIEMAP_EXTENT_LAST: "last", FIEMAP_EXTENT_UNKNOWN: "unknown",
    FIEMAP_EXTENT_DELALLOC: "delalloc", FIEMAP_EXTENT_UNWRITTEN: "unwritten",
    FIEMAP_EXTENT_MERGED: "merged", FIEMAP_EXTENT_SHARED: "shared",
}
# struct fiemap: u64 start, u64 length, u32 flags, u32 mapped_extents, u32 extent_count, u32 reserved
FIEMAP_HEAD = struct.Struct("=QQIIII")
# struct fiemap_extent: u64 logical, u64 physical, u64 length, u64 reserved[2], u32 flags, u32 reserved[3]
FIEMAP_EXTENT = struct.Struct("=QQQ16xI12x")
assert FIEMAP_HEAD.size == 32 and FIEMAP_EXTENT.size == 56

# GETFSMAP
FS_IOC_GETFSMAP = 0xC0C0583B


def FMR_OWNER(type_, code):
    return (type_ << 32) | (code & 0xFFFFFFFF)


FMR_OWN_FREE = FMR_OWNER(0, 1)
FMR_OWN_UNKNOWN = FMR_OWNER(0, 2)
FMR_OWN_FS = FMR_OWNER(0, 3)
# Special owner of this filesystem, as ext4 names its own with FMR_OWNER('X', n):
# the unused part of a preallocation window (busy for others, released by a fallocate2 hint).
PYFALLOC_FMR_OWN_PREALLOC = FMR_OWNER(ord("P"), 1)
FMR_OF_PREALLOC = 0x1
FMR_OF_SPECIAL_OWNER = 0x10
FMR_OF_LAST = 0x20
FMH_IF_VALID = 0
FMH_OF_DEV_T = 0x1
# struct fsmap: u32 device, u32 flags, u64 physical, u64 owner, u64 offset, u64 length, u64 reserved[3]
FSMAP_REC = struct.Struct("=IIQQQQ24x")
# struct fsmap_head: u32 iflags, u32 oflags, u32 count, u32 entries, u64 reserved[6], fsmap keys[2]
FSMAP_HEAD = struct.Struct("=IIII48x")
assert FSMAP_REC.size == 64 and FSMAP_HEAD.size + 2 * FSMAP_REC.size == 192

# EXT4_IOC_MOVE_EXT: u32 reserved, u32 donor_fd, u64 orig_start, u64 donor_start, u64 len, u64 moved_len
EXT4_IOC_MOVE_EXT = 0xC028660F
MOVE_EXTENT = struct.Struct("=IIQQQQ")
assert MOVE_EXTENT.size == 40

FIGETBSZ = 2
FS_IOC_GETFLAGS = 0x80086601        # an int, whatever the number says
FS_IOC_SETFLAGS = 0x40086602
FS_EXTENT_FL = 0x80000              # ext4 shows it on every extent-mapped inode (lsattr's 'e')
# struct fsxattr { u32 fsx_xflags, fsx_extsize, fsx_nextents, fsx_projid, fsx_cowextsize; u8 pad[8]; }
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FSXATTR = struct.Struct("=IIIII8x")
FS_XFLAG_EXTSIZE = 0x800
FS_XFLAG_EXTSZINHERIT = 0x1000
FS_XFLAG_COWEXTSIZE = 0x10000
FS_XFLAG_DAX = 0x8000
# the flags both interfaces name (the kernel's fileattr_fill_flags): inode flag -> xflag
FS_COMMON_XFLAGS = {FS_SYNC_FL: 0x20, FS_IMMUTABLE_FL: 0x8, FS_APPEND_FL: 0x10, FS_NODUMP_FL: 0x80,
                    FS_NOATIME_FL: 0x40, FS_DAX_FL: FS_XFLAG_DAX, FS_PROJINHERIT_FL: 0x200}
# FITRIM: struct fstrim_range { u64 start, len, minlen; } (len comes back as the bytes trimmed)
FITRIM = 0xC0185879
FSTRIM_RANGE = struct.Struct("=QQQ")
FICLONE = 0x40049409
FICLONERANGE = 0x4020940D
FIDEDUPERANGE = 0xC0189436
FIONREAD = 0x541B
# the XFS preallocation requests the kernel serves for every filesystem through vfs_fallocate
# (ioctl_preallocate; Linux 6.18 answers FS_IOC_ZERO_RANGE only on XFS itself):
# struct xfs_flock64 { s16 l_type, l_whence; s64 l_start, l_len; s32 l_sysid; u32 l_pid; s32 pad[4]; }
FS_IOC_RESVSP64 = 0x4030582A
FS_IOC_UNRESVSP64 = 0x4030582B
XFS_FLOCK64 = struct.Struct("=hh4xqqiI16x")
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
