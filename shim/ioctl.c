/* ioctl on image files: the requests the compactor and filefrag need, with their sizes
 * computed here so Python gets the whole kernel struct. */
#include "interpose.h"
#include <sys/ioctl.h>

REAL(int, ioctl, int, unsigned long, ...)

#define FS_IOC_FIEMAP_NR 0xC020660BUL
#define FS_IOC_GETFSMAP_NR 0xC0C0583BUL
#define EXT4_IOC_MOVE_EXT_NR 0xC028660FUL
#define FIGETBSZ_NR 2UL

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
        return (long long)sizeof(int);
    }
    return -1;
}

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    char *arg = va_arg(ap, char *);
    va_end(ap);
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
    return real_ioctl(fd, req, arg);
}
