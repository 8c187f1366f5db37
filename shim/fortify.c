/* The _FORTIFY_SOURCE entry points of the calls the shim serves: a program built with
 * fortification calls __realpath_chk for realpath, and __read_chk and its kin where the
 * compiler cannot prove the buffer large enough. glibc runs those on its internal symbols,
 * past the interposer, so each is defined here: the same check of the buffer's size as
 * glibc's (an overflow ends the program through __chk_fail), then the interposed call. */
#include "interpose.h"
#include <limits.h>

extern void __chk_fail(void) __attribute__((noreturn));

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return read(fd, buf, n);
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return pread(fd, buf, n, off);
}

ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    return __pread_chk(fd, buf, n, off, buflen);
}

ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen)
{
    if (len > buflen)
        __chk_fail();
    return readlink(path, buf, len);
}

ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t len, size_t buflen)
{
    if (len > buflen)
        __chk_fail();
    return readlinkat(dirfd, path, buf, len);
}

char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen)
{
    if (resolvedlen < PATH_MAX)
        __chk_fail();
    return realpath(path, resolved);
}

char *__getcwd_chk(char *buf, size_t size, size_t buflen)
{
    if (size > buflen)
        __chk_fail();
    return getcwd(buf, size);
}

char *__getwd_chk(char *buf, size_t buflen)
{
    char *r = getcwd(buf, buflen);
    if (!r && errno == ERANGE)
        __chk_fail();
    return r;
}
