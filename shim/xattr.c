/* Extended attributes: the image has none and takes none. Answering EOPNOTSUPP (after the
 * path's own ENOENT or ENOTDIR) is what Linux says for a filesystem without them, and what
 * cp -a, tar and Python's shutil.copystat fall back on; reaching the host instead would say
 * ENOENT for a path that exists. */
#include "interpose.h"
#include <sys/xattr.h>

REAL(ssize_t, getxattr, const char *, const char *, void *, size_t)
REAL(ssize_t, lgetxattr, const char *, const char *, void *, size_t)
REAL(ssize_t, fgetxattr, int, const char *, void *, size_t)
REAL(int, setxattr, const char *, const char *, const void *, size_t, int)
REAL(int, lsetxattr, const char *, const char *, const void *, size_t, int)
REAL(int, fsetxattr, int, const char *, const void *, size_t, int)
REAL(ssize_t, listxattr, const char *, char *, size_t)
REAL(ssize_t, llistxattr, const char *, char *, size_t)
REAL(ssize_t, flistxattr, int, char *, size_t)
REAL(int, removexattr, const char *, const char *)
REAL(int, lremovexattr, const char *, const char *)
REAL(int, fremovexattr, int, const char *)

/* EOPNOTSUPP for an image path that exists, its stat error otherwise */
static int unsupported(const char *ip)
{
    struct stat st;
    if (ip && image_stat(-1, ip, &st) < 0)
        return -1;
    errno = EOPNOTSUPP;
    return -1;
}

#define BY_PATH(ret, name, params, args)                                        \
    ret name params                                                             \
    {                                                                           \
        const char *ip = HERE(path);                                            \
        if (ip)                                                                 \
            return unsupported(ip);                                             \
        load_##name();                                                          \
        return real_##name args;                                                \
    }

#define BY_FD(ret, name, params, args)                                          \
    ret name params                                                             \
    {                                                                           \
        if (is_virt(fd))                                                        \
            return unsupported(NULL);                                           \
        load_##name();                                                          \
        return real_##name args;                                                \
    }

BY_PATH(ssize_t, getxattr, (const char *path, const char *name, void *value, size_t size), (alias(path), name, value, size))
BY_PATH(ssize_t, lgetxattr, (const char *path, const char *name, void *value, size_t size), (alias(path), name, value, size))
BY_FD(ssize_t, fgetxattr, (int fd, const char *name, void *value, size_t size), (fd, name, value, size))
BY_PATH(int, setxattr, (const char *path, const char *name, const void *value, size_t size, int flags),
        (alias(path), name, value, size, flags))
BY_PATH(int, lsetxattr, (const char *path, const char *name, const void *value, size_t size, int flags),
        (alias(path), name, value, size, flags))
BY_FD(int, fsetxattr, (int fd, const char *name, const void *value, size_t size, int flags),
      (fd, name, value, size, flags))
BY_PATH(ssize_t, listxattr, (const char *path, char *list, size_t size), (alias(path), list, size))
BY_PATH(ssize_t, llistxattr, (const char *path, char *list, size_t size), (alias(path), list, size))
BY_FD(ssize_t, flistxattr, (int fd, char *list, size_t size), (fd, list, size))
BY_PATH(int, removexattr, (const char *path, const char *name), (alias(path), name))
BY_PATH(int, lremovexattr, (const char *path, const char *name), (alias(path), name))
BY_FD(int, fremovexattr, (int fd, const char *name), (fd, name))
