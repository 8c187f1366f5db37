/* fallocate2(2) as proposed (Kirill Tkhai, 2020): fallocate with a physical placement hint,
 * declared as a C library would ship it, with the ioctls a compactor uses beside it.
 *
 * physical == FALLOCATE2_NO_HINT places as fallocate(2) does; otherwise logical block L of
 * the range lands on block physical/bs + (L - offset/bs), or the call fails (ENOSPC busy,
 * EINVAL outside the device or unaligned, EEXIST mapped elsewhere, EPERM without CAP_FOWNER,
 * EOPNOTSUPP with a mode other than 0 or FALLOC_FL_KEEP_SIZE, or on a filesystem that cannot
 * place blocks). Under libpyfalloc (pyfalloc run) the calls reach the image's allocator; on a
 * stock kernel syscall 486 is ENOSYS. */
#ifndef PYFALLOC_FALLOCATE2_H
#define PYFALLOC_FALLOCATE2_H
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- numbers ----------------------------------------------------------------------------------- */
#define SYS_fallocate2 486          /* x86_64 and i386, as the RFC's syscall tables */
#define SYS_fallocate3 487          /* the portable form below (a proposal of this project) */
#define FALLOCATE2_NO_HINT ((uint64_t)-1)

#include <linux/falloc.h>           /* FALLOC_FL_* */
#ifndef FALLOC_FL_WRITE_ZEROES          /* Linux 6.17 */
#define FALLOC_FL_WRITE_ZEROES 0x80
#endif

/* ---- the call ---------------------------------------------------------------------------------- */
#ifndef PYFALLOC_NO_INLINE
static inline int fallocate2(int fd, int mode, off_t offset, off_t len, uint64_t physical)
{
    return (int)syscall(SYS_fallocate2, fd, mode, offset, len, physical);
}
#else
int fallocate2(int fd, int mode, off_t offset, off_t len, uint64_t physical);
#endif

/* The RFC's i386 compat entry (arch/x86/ia32/sys_ia32.c in the patch), exported by
 * libpyfalloc as a function: the eight 32-bit halves joined ((u64)hi << 32) | lo. Returns 0
 * or -errno, as a kernel entry. A real i386 syscall passes six registers (ebx, ecx, edx, esi,
 * edi, ebp): physical_lo and physical_hi cannot be delivered. */
long compat_sys_x86_fallocate2(int fd, int mode, unsigned int offset_lo, unsigned int offset_hi,
                               unsigned int len_lo, unsigned int len_hi,
                               unsigned int physical_lo, unsigned int physical_hi);

/* The portable form: a struct and its size, as clone3 and openat2 take theirs, so three
 * words reach the kernel on every ABI and later fields can be added. size below
 * FALLOCATE_HOW_SIZE_VER0: EINVAL; above a page: E2BIG; nonzero bytes past the fields a
 * version knows: E2BIG; reserved != 0: EINVAL. */
struct fallocate_how {
    uint64_t offset;
    uint64_t len;
    uint64_t physical;              /* FALLOCATE2_NO_HINT: no hint */
    uint32_t mode;
    uint32_t reserved;              /* must be zero */
};
#define FALLOCATE_HOW_SIZE_VER0 32

#ifndef PYFALLOC_NO_INLINE
static inline int fallocate3(int fd, const struct fallocate_how *how, size_t size)
{
    return (int)syscall(SYS_fallocate3, fd, how, size);
}
#else
int fallocate3(int fd, const struct fallocate_how *how, size_t size);
#endif

/* ---- EXT4_IOC_MOVE_EXT: swap a range of blocks between a file and a donor (ext4 keeps it
 * out of the UAPI headers) ------------------------------------------------------------------------ */
#ifndef EXT4_IOC_MOVE_EXT
struct move_extent {
    uint32_t reserved;              /* must be zero */
    uint32_t donor_fd;
    uint64_t orig_start;            /* in blocks */
    uint64_t donor_start;
    uint64_t len;
    uint64_t moved_len;             /* out */
};
#define EXT4_IOC_MOVE_EXT _IOWR('f', 15, struct move_extent)
#endif

/* ---- FS_IOC_FIEMAP (a file's extents) and FS_IOC_GETFSMAP (who owns the device's blocks):
 * the kernel's own UAPI headers; FIEMAP_EXTENT_UNWRITTEN marks fallocated blocks ---------------- */
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/fsmap.h>

#endif
