/* Extended attributes of image files and directories (user.*, trusted.*, security.*), kept
 * by the volume; the checks are Python's, in the kernel's order. The l* forms are the same
 * on the image, which has no symbolic links. */
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

/* by path (ip, fd ignored) or by descriptor (ip NULL) */
static ssize_t image_xattr(int op, int fd, const char *ip, const char *name, const void *value, size_t size,
                           int flags)
{
    return (ssize_t)PY(pyf_xattr(op, fd, ip ? inner(ip) : NULL, name, (char *)value, (long long)size, flags));
}

ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
    const char *ip = HERE(path);
    if (ip)
        return image_xattr(X_GET, -1, ip, name, value, size, 0);
    load_getxattr();
    return real_getxattr(alias(path), name, value, size);
}

ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
{
    const char *ip = HERE(path);
    if (ip)
        return image_xattr(X_GET, -1, ip, name, value, size, 0);
    load_lgetxattr();
    return real_lgetxattr(alias(path), name, value, size);
}

ssize_t fgetxattr(int fd, const char *name, void *value, size_t size)
{
    if (is_virt(fd))
        return image_xattr(X_GET, fd, NULL, name, value, size, 0);
    load_fgetxattr();
    return real_fgetxattr(fd, name, value, size);
}

int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)image_xattr(X_SET, -1, ip, name, value, size, flags);
    load_setxattr();
    return real_setxattr(alias(path), name, value, size, flags);
}

int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)image_xattr(X_SET, -1, ip, name, value, size, flags);
    load_lsetxattr();
    return real_lsetxattr(alias(path), name, value, size, flags);
}

int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)
{
    if (is_virt(fd))
        return (int)image_xattr(X_SET, fd, NULL, name, value, size, flags);
    load_fsetxattr();
    return real_fsetxattr(fd, name, value, size, flags);
}

ssize_t listxattr(const char *path, char *list, size_t size)
{
    const char *ip = HERE(path);
    if (ip)
        return image_xattr(X_LIST, -1, ip, NULL, list, size, 0);
    load_listxattr();
    return real_listxattr(alias(path), list, size);
}

ssize_t llistxattr(const char *path, char *list, size_t size)
{
    const char *ip = HERE(path);
    if (ip)
        return image_xattr(X_LIST, -1, ip, NULL, list, size, 0);
    load_llistxattr();
    return real_llistxattr(alias(path), list, size);
}

ssize_t flistxattr(int fd, char *list, size_t size)
{
    if (is_virt(fd))
        return image_xattr(X_LIST, fd, NULL, NULL, list, size, 0);
    load_flistxattr();
    return real_flistxattr(fd, list, size);
}

int removexattr(const char *path, const char *name)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)image_xattr(X_REMOVE, -1, ip, name, NULL, 0, 0);
    load_removexattr();
    return real_removexattr(alias(path), name);
}

int lremovexattr(const char *path, const char *name)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)image_xattr(X_REMOVE, -1, ip, name, NULL, 0, 0);
    load_lremovexattr();
    return real_lremovexattr(alias(path), name);
}

int fremovexattr(int fd, const char *name)
{
    if (is_virt(fd))
        return (int)image_xattr(X_REMOVE, fd, NULL, name, NULL, 0, 0);
    load_fremovexattr();
    return real_fremovexattr(fd, name);
}
