/* Extended attributes of image files and directories (user.*, trusted.*, security.*), kept
 * by the volume; the checks are Python's, in the kernel's order. The l* forms act on a last
 * symbolic link itself (BY_PATH_ITSELF). */
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

enum { X_GET, X_SET, X_LIST, X_REMOVE };       /* pyf_xattr's op */

/* by path (ip; fd BY_PATH_FOLLOW or BY_PATH_ITSELF) or by descriptor (ip NULL) */
static ssize_t image_xattr(int op, int fd, const char *ip, const char *name, const void *value, size_t size,
                           int flags)
{
    return (ssize_t)PY(pyf_xattr(op, fd, ip ? inner(ip) : NULL, name, (char *)value, (long long)size, flags));
}

/* one wrapper: image paths and descriptors to Python as op, the rest to libc */
#define BY_PATH_AS(at, ret, fn, op, params, name, value, size, flags, args)    \
    ret fn params                                                               \
    {                                                                           \
        const char *ip = HERE(path);                                            \
        if (ip)                         /* a link out of the image: the host's */ \
            return (ret)OR_HOST(image_xattr(op, at, ip, name, value, size, flags), \
                                (path = host, load_##fn(), real_##fn args));    \
        load_##fn();                                                            \
        return real_##fn args;                                                  \
    }
#define BY_PATH(...) BY_PATH_AS(BY_PATH_FOLLOW, __VA_ARGS__)         /* a last link followed */
#define BY_LPATH(...) BY_PATH_AS(BY_PATH_ITSELF, __VA_ARGS__)        /* the l* forms: the link itself */
#define BY_FD(ret, fn, op, params, name, value, size, flags, args)              \
    ret fn params                                                               \
    {                                                                           \
        if (is_virt(fd))                                                        \
            return (ret)image_xattr(op, fd, NULL, name, value, size, flags);    \
        load_##fn();                                                            \
        return real_##fn args;                                                  \
    }

#define GET_PARAMS (const char *path, const char *name, void *value, size_t size)
#define SET_PARAMS (const char *path, const char *name, const void *value, size_t size, int flags)
#define LIST_PARAMS (const char *path, char *list, size_t size)
#define REMOVE_PARAMS (const char *path, const char *name)
BY_PATH(ssize_t, getxattr, X_GET, GET_PARAMS, name, value, size, 0, (alias(path), name, value, size))
BY_LPATH(ssize_t, lgetxattr, X_GET, GET_PARAMS, name, value, size, 0, (alias(path), name, value, size))
BY_FD(ssize_t, fgetxattr, X_GET, (int fd, const char *name, void *value, size_t size), name, value, size, 0,
      (fd, name, value, size))
BY_PATH(int, setxattr, X_SET, SET_PARAMS, name, value, size, flags, (alias(path), name, value, size, flags))
BY_LPATH(int, lsetxattr, X_SET, SET_PARAMS, name, value, size, flags, (alias(path), name, value, size, flags))
BY_FD(int, fsetxattr, X_SET, (int fd, const char *name, const void *value, size_t size, int flags), name, value,
      size, flags, (fd, name, value, size, flags))
BY_PATH(ssize_t, listxattr, X_LIST, LIST_PARAMS, NULL, list, size, 0, (alias(path), list, size))
BY_LPATH(ssize_t, llistxattr, X_LIST, LIST_PARAMS, NULL, list, size, 0, (alias(path), list, size))
BY_FD(ssize_t, flistxattr, X_LIST, (int fd, char *list, size_t size), NULL, list, size, 0, (fd, list, size))
BY_PATH(int, removexattr, X_REMOVE, REMOVE_PARAMS, name, NULL, 0, 0, (alias(path), name))
BY_LPATH(int, lremovexattr, X_REMOVE, REMOVE_PARAMS, name, NULL, 0, 0, (alias(path), name))
BY_FD(int, fremovexattr, X_REMOVE, (int fd, const char *name), name, NULL, 0, 0, (fd, name))
