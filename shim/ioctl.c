/* ioctl on image files: the requests the compactor and filefrag need, with their sizes
 * computed here so Python gets the whole kernel struct. */
#include "interpose.h"
#include <sys/ioctl.h>

REAL(int, ioctl, int, unsigned long, ...)

#define FS_IOC_FIEMAP_NR 0xC020660BUL
#define FS_IOC_GETFSMAP_NR 0xC0C0583BUL
#define EXT4_IOC_MOVE_EXT_NR 0xC028660FUL
#define FIGETBSZ_NR 2UL

static long long ioctl_size(unsigned long req, const char *arg)
{
    uint32_t count;
    switch (req) {
    case FS_IOC_FIEMAP_NR:
        memcpy(&count, arg + 24, 4);               /* fm_extent_count */
        return 32 + 56LL * count;
    case FS_IOC_GETFSMAP_NR:
        memcpy(&count, arg + 8, 4);                /* fmh_count */
        return 192 + 64LL * count;
    case EXT4_IOC_MOVE_EXT_NR:
        return 40;
    case FIGETBSZ_NR:
        return (long long)sizeof(int);
    }
    return 0;
}

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    char *arg = va_arg(ap, char *);
    va_end(ap);
    if (is_virt(fd)) {
        static char none[1];
        int served = req == FS_IOC_FIEMAP_NR || req == FS_IOC_GETFSMAP_NR
                     || req == EXT4_IOC_MOVE_EXT_NR || req == FIGETBSZ_NR;
        if (served && !arg) {
            errno = EFAULT;
            return -1;
        }
        /* another request: Python answers ENOTTY, as for a file without it */
        return (int)PY(pyf_ioctl(fd, req, served ? arg : none, served ? ioctl_size(req, arg) : 0));
    }
    load_ioctl();
    return real_ioctl(fd, req, arg);
}

