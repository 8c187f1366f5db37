/* pathconf and fpathconf of image files. glibc answers several names from the
 * filesystem's statfs, which it makes from inside itself (past the interposer), so an image
 * path would be asked of the host. The answers are ext4's (the image keeps ext4's name and
 * path limits, its block size and its symbolic links). */
#include "interpose.h"
#include <limits.h>

REAL(long, pathconf, const char *, int)
REAL(long, fpathconf, int, int)

/* the names glibc answers without looking at the file: -2 for the others */
static long constant(int name)
{
    switch (name) {
    case _PC_MAX_CANON:
    case _PC_MAX_INPUT:
        return 255;
    case _PC_PATH_MAX:
        return PATH_MAX;
    case _PC_PIPE_BUF:
        return PIPE_BUF;
    case _PC_NO_TRUNC:
        return 1;
    case _PC_VDISABLE:
        return 0;
    case _PC_SYNC_IO:
    case _PC_PRIO_IO:
    case _PC_SOCK_MAXBUF:
    case _PC_REC_INCR_XFER_SIZE:
    case _PC_REC_MAX_XFER_SIZE:
    case _PC_SYMLINK_MAX:
        return -1;                      /* no limit, errno untouched */
    }
    return -2;
}

static long of_file(const struct stat *st, int name)
{
    switch (name) {
    case _PC_LINK_MAX:
        return 65000;                   /* ext4's EXT4_LINK_MAX */
    case _PC_2_SYMLINKS:
        return 1;
    case _PC_NAME_MAX:
        return 255;
    case _PC_CHOWN_RESTRICTED:
        return 1;
    case _PC_FILESIZEBITS:
        return 64;
    case _PC_ASYNC_IO:
        return -1;
    case _PC_REC_MIN_XFER_SIZE:
    case _PC_REC_XFER_ALIGN:
    case _PC_ALLOC_SIZE_MIN:
        return st->st_blksize;
    }
    errno = EINVAL;
    return -1;
}

/* an image file's answer: by path, or (path NULL) of the descriptor */
static long image_pathconf(const char *path, int fd, int name)
{
    long c = constant(name);
    struct stat st;
    if (c != -2)
        return c;
    return (path ? stat(path, &st) : fstat(fd, &st)) < 0 ? -1 : of_file(&st, name);
}

long pathconf(const char *path, int name)
{
    if (HERE(path))
        return image_pathconf(path, -1, name);
    load_pathconf();
    return real_pathconf(alias(path), name);
}

long fpathconf(int fd, int name)
{
    if (is_virt(fd))
        return image_pathconf(NULL, fd, name);
    load_fpathconf();
    return real_fpathconf(fd, name);
}
