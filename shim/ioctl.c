/* ioctl on image files: the requests the compactor and filefrag need, and those the kernel
 * serves for any filesystem (inode flags in both forms, FITRIM, FIONREAD, the XFS preallocation requests), with
 * their sizes computed here so Python gets the whole kernel struct. */
#include "interpose.h"
#include <sys/ioctl.h>

REAL(int, ioctl, int, unsigned long, ...)

#define FS_IOC_FIEMAP_NR 0xC020660BUL
#define FS_IOC_GETFSMAP_NR 0xC0C0583BUL
#define EXT4_IOC_MOVE_EXT_NR 0xC028660FUL
#define FIGETBSZ_NR 2UL
#define FS_IOC_GETFLAGS_NR 0x80086601UL
#define FS_IOC_SETFLAGS_NR 0x40086602UL
#define FIONREAD_NR 0x541BUL
#define FITRIM_NR 0xC0185879UL
#define FS_IOC_FSGETXATTR_NR 0x801C581FUL
#define FS_IOC_FSSETXATTR_NR 0x401C5820UL
#define FS_IOC_RESVSP64_NR 0x4030582AUL
#define FS_IOC_UNRESVSP64_NR 0x4030582BUL

/* the size of the argument of a request served here, -1 for any other; an argument that is
 * NULL counts 0 (EFAULT follows) */
static long long ioctl_size(unsigned long req, const char *arg)
{
    uint32_t count = 0;
    switch (req) {
    case FS_IOC_FIEMAP_NR:
        if (arg)
            memcpy(&count, arg + 24, 4);           /* fm_extent_count */
        return arg ? 32 + 56LL * count : 0;
    case FS_IOC_GETFSMAP_NR:
        if (arg)
            memcpy(&count, arg + 8, 4);            /* fmh_count */
        return arg ? 192 + 64LL * count : 0;
    case EXT4_IOC_MOVE_EXT_NR:
        return 40;
    case FIGETBSZ_NR:
    case FS_IOC_GETFLAGS_NR:        /* an int, as the kernel reads and writes it */
    case FS_IOC_SETFLAGS_NR:
    case FIONREAD_NR:
        return (long long)sizeof(int);
    case FITRIM_NR:                 /* struct fstrim_range */
        return 24;
    case FS_IOC_FSGETXATTR_NR:      /* struct fsxattr */
    case FS_IOC_FSSETXATTR_NR:
        return 28;
    case FS_IOC_RESVSP64_NR:        /* struct xfs_flock64 */
    case FS_IOC_UNRESVSP64_NR:
        return 48;
    }
    return -1;
}

int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    char *arg = va_arg(ap, char *);
    va_end(ap);
    /* the kernel takes the number as an unsigned int: a program that holds it in an int
     * (xfs_io does) passes 0x801C581F sign-extended */
    unsigned long req = (unsigned int)request;
    if (is_virt(fd) && req == FIONREAD_NR) {      /* the position is the shadow's */
        struct stat st;
        if (!arg)
            return failed_errno(EFAULT);
        off_t pos = k_lseek(fd, 0, SEEK_CUR);
        if (pos < 0 || image_stat(fd, NULL, &st) < 0)
            return -1;
        int unread = st.st_size > pos ? (int)(st.st_size - pos) : 0;
        memcpy(arg, &unread, sizeof unread);
        return 0;
    }
    if (is_virt(fd)) {
        static char none[1];
        long long size = ioctl_size(req, arg);
        if (size >= 0 && !arg) {
            errno = EFAULT;
            return -1;
        }
        /* another request: Python answers ENOTTY, as for a file without it */
        return (int)PY(pyf_ioctl(fd, req, size >= 0 ? arg : none, size >= 0 ? size : 0));
    }
    load_ioctl();
    return real_ioctl(fd, request, arg);
}
