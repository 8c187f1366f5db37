/* libpyfalloc: LD_PRELOAD interposer. Paths under the mount prefix (PYFALLOC_MOUNT, default
 * /pyfalloc) are files of the image PYFALLOC_IMAGE; everything else takes the C fast path to
 * libc without entering Python. An open image file is backed by a real kernel fd (an O_PATH
 * shadow of /dev/null), so dup, fork and close_range see an ordinary descriptor.
 *
 * Compiled apart from the cffi module: Python.h sets _FILE_OFFSET_BITS=64, which would
 * quietly turn `fallocate` below into `fallocate64`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include "shim.h"

#define MAX_FDS 65536
#define SYS_FALLOCATE2 486
#define NO_HINT ((unsigned long long)-1)

static char prefix[4096] = "/pyfalloc";
static size_t prefix_len = 9;
static unsigned char virt[MAX_FDS];         /* fd is a shadow of an image file */
static char *vpath[MAX_FDS];                /* ... opened by this path (for *at calls) */
static int python_started;

#define REAL(ret, name, ...)                                                    \
    static ret (*real_##name)(__VA_ARGS__);                                     \
    static void load_##name(void) {                                             \
        if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name); \
    }

REAL(int, open, const char *, int, ...)
REAL(int, openat, int, const char *, int, ...)
REAL(int, close, int)
REAL(ssize_t, read, int, void *, size_t)
REAL(ssize_t, write, int, const void *, size_t)
REAL(ssize_t, pread, int, void *, size_t, off_t)
REAL(ssize_t, pwrite, int, const void *, size_t, off_t)
REAL(off_t, lseek, int, off_t, int)
REAL(int, fstat, int, struct stat *)
REAL(int, stat, const char *, struct stat *)
REAL(int, lstat, const char *, struct stat *)
REAL(int, fstatat, int, const char *, struct stat *, int)
REAL(int, statx, int, const char *, int, unsigned int, struct statx *)
REAL(int, fallocate, int, int, off_t, off_t)
REAL(int, posix_fallocate, int, off_t, off_t)
REAL(int, ftruncate, int, off_t)
REAL(int, truncate, const char *, off_t)
REAL(int, fsync, int)
REAL(int, fdatasync, int)
REAL(int, ioctl, int, unsigned long, ...)
REAL(int, unlink, const char *)
REAL(int, unlinkat, int, const char *, int)
REAL(int, rmdir, const char *)
REAL(int, mkdir, const char *, mode_t)
REAL(int, rename, const char *, const char *)
REAL(int, dup, int)
REAL(int, dup2, int, int)
REAL(int, dup3, int, int, int)
REAL(long, syscall, long, ...)
REAL(ssize_t, copy_file_range, int, off_t *, int, off_t *, size_t, unsigned int)

__attribute__((constructor)) static void shim_init(void)
{
    const char *m = getenv("PYFALLOC_MOUNT");
    if (m && *m == '/' && strlen(m) < sizeof prefix) {
        strcpy(prefix, m);
        prefix_len = strlen(prefix);
        while (prefix_len > 1 && prefix[prefix_len - 1] == '/')
            prefix[--prefix_len] = 0;
    }
    /* the embedded interpreter finds its standard library through PYTHONHOME; it is put
     * back after Python starts, so children that are other Pythons do not inherit it */
    const char *home = getenv("PYFALLOC_PYTHONHOME");
    if (home && !getenv("PYTHONHOME"))
        setenv("PYTHONHOME", home, 0);
}

static int on_image(const char *path)
{
    return path && strncmp(path, prefix, prefix_len) == 0
           && (path[prefix_len] == 0 || path[prefix_len] == '/');
}

/* the path inside the image of a path under the prefix: Python never sees the prefix */
static const char *inner(const char *path)
{
    return path && path[prefix_len] ? path + prefix_len : path ? "/" : NULL;
}

static int is_virt(int fd) { return fd >= 0 && fd < MAX_FDS && virt[fd]; }

/* map a Python answer (result + 1, -errno, or 0 = Python did not start) to libc's way */
static long long done(long long r)
{
    if (!python_started && r != 0) {
        python_started = 1;
        if (getenv("PYFALLOC_PYTHONHOME"))
            unsetenv("PYTHONHOME");
    }
    if (r > 0)
        return r - 1;
    if (r == 0) {
        static int told;
        if (!told++)
            fprintf(stderr, "libpyfalloc: the embedded Python did not start "
                            "(run programs through `pyfalloc run`, which sets PYFALLOC_PYTHONHOME)\n");
        errno = ENOSYS;
        return -1;
    }
    errno = (int)-r;
    return -1;
}

static void set_virt(int fd, const char *path)
{
    virt[fd] = 1;
    free(vpath[fd]);
    vpath[fd] = path ? strdup(path) : NULL;
}

static void clear_virt(int fd)
{
    virt[fd] = 0;
    free(vpath[fd]);
    vpath[fd] = NULL;
}

/* the working directory, while it is a directory of the image (fts and find chdir into them) */
static char vcwd[4096];

/* the image path a (dirfd, path) pair names, or NULL when it is not on the image */
static const char *image_path(int dirfd, const char *path)
{
    static __thread char joined[8192];
    if (!path)
        return NULL;
    if (path[0] == '/')
        return on_image(path) ? path : NULL;
    const char *base = dirfd == AT_FDCWD ? (vcwd[0] ? vcwd : NULL) : is_virt(dirfd) ? vpath[dirfd] : NULL;
    if (!base)
        return NULL;
    snprintf(joined, sizeof joined, "%s/%s", base, path);
    return joined;
}

#define HERE(path) image_path(AT_FDCWD, path)

int renameat2(int olddir, const char *from, int newdir, const char *to, unsigned int flags);

static int open_image(const char *path, int flags, mode_t mode)
{
    load_open();
    /* O_PATH: a program that inherits the shadow across exec, without knowing it, gets EBADF
     * from read and write rather than the silence of /dev/null */
    int shadow = real_open("/dev/null", O_PATH | (flags & O_CLOEXEC));
    if (shadow < 0)
        return -1;
    if (shadow >= MAX_FDS) {
        load_close();
        real_close(shadow);
        errno = EMFILE;
        return -1;
    }
    long long r = done(pyf_open(inner(path), flags, (int)mode, shadow));
    if (r < 0) {
        int e = errno;
        load_close();
        real_close(shadow);
        errno = e;
        return -1;
    }
    set_virt(shadow, path);
    return shadow;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

/* ---- open family --------------------------------------------------------------------------- */
int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    const char *ip = HERE(path);
    if (ip)
        return open_image(ip, flags, mode);
    load_open();
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return open(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    const char *ip = image_path(dirfd, path);
    if (ip)
        return open_image(ip, flags, mode);
    load_openat();
    return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return openat(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open(path, flags); }
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int creat(const char *path, mode_t mode) { return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return creat(path, mode); }

int close(int fd)
{
    load_close();
    if (is_virt(fd)) {
        clear_virt(fd);
        done(pyf_close(fd));
    }
    return real_close(fd);
}

/* ---- data ------------------------------------------------------------------------------------ */
ssize_t read(int fd, void *buf, size_t n)
{
    if (is_virt(fd))
        return done(pyf_read(fd, buf, (long long)n, -1));
    load_read();
    return real_read(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (is_virt(fd))
        return done(pyf_write(fd, buf, (long long)n, -1));
    load_write();
    return real_write(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    if (is_virt(fd)) {
        if (off < 0) {
            errno = EINVAL;
            return -1;
        }
        return done(pyf_read(fd, buf, (long long)n, off));
    }
    load_pread();
    return real_pread(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (is_virt(fd)) {
        if (off < 0) {
            errno = EINVAL;
            return -1;
        }
        return done(pyf_write(fd, buf, (long long)n, off));
    }
    load_pwrite();
    return real_pwrite(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

off_t lseek(int fd, off_t off, int whence)
{
    if (is_virt(fd))
        return done(pyf_lseek(fd, off, whence));
    load_lseek();
    return real_lseek(fd, off, whence);
}

off_t lseek64(int fd, off_t off, int whence) { return lseek(fd, off, whence); }

/* ---- metadata -------------------------------------------------------------------------------- */
enum { ST_MODE, ST_INO, ST_NLINK, ST_UID, ST_GID, ST_SIZE, ST_ATIME, ST_MTIME, ST_CTIME, ST_BLKSIZE,
       ST_BLOCKS, ST_ATIME_NS, ST_MTIME_NS, ST_CTIME_NS, ST_DEV, ST_N };

static int image_stat(int fd, const char *path, struct stat *st)
{
    long long v[ST_N];
    if (done(pyf_stat(fd, inner(path), v)) < 0)
        return -1;
    memset(st, 0, sizeof *st);
    st->st_mode = (mode_t)v[ST_MODE];
    st->st_ino = (ino_t)v[ST_INO];
    st->st_dev = (dev_t)v[ST_DEV];
    st->st_nlink = (nlink_t)v[ST_NLINK];
    st->st_uid = (uid_t)v[ST_UID];
    st->st_gid = (gid_t)v[ST_GID];
    st->st_size = (off_t)v[ST_SIZE];
    st->st_blksize = (blksize_t)v[ST_BLKSIZE];
    st->st_blocks = (blkcnt_t)v[ST_BLOCKS];
    st->st_atim.tv_sec = v[ST_ATIME];
    st->st_atim.tv_nsec = v[ST_ATIME_NS];
    st->st_mtim.tv_sec = v[ST_MTIME];
    st->st_mtim.tv_nsec = v[ST_MTIME_NS];
    st->st_ctim.tv_sec = v[ST_CTIME];
    st->st_ctim.tv_nsec = v[ST_CTIME_NS];
    return 0;
}

int fstat(int fd, struct stat *st)
{
    if (is_virt(fd))
        return image_stat(fd, NULL, st);
    load_fstat();
    return real_fstat(fd, st);
}

int stat(const char *path, struct stat *st)
{
    const char *ip = HERE(path);
    if (ip)
        return image_stat(-1, ip, st);
    load_stat();
    return real_stat(path, st);
}

int lstat(const char *path, struct stat *st)
{
    const char *ip = HERE(path);
    if (ip)
        return image_stat(-1, ip, st);
    load_lstat();
    return real_lstat(path, st);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    if (!*path && (flags & AT_EMPTY_PATH) && is_virt(dirfd))
        return image_stat(dirfd, NULL, st);
    const char *ip = image_path(dirfd, path);
    if (ip)
        return image_stat(-1, ip, st);
    load_fstatat();
    return real_fstatat(dirfd, path, st, flags);
}

int fstat64(int fd, struct stat64 *st) { return fstat(fd, (struct stat *)st); }
int stat64(const char *path, struct stat64 *st) { return stat(path, (struct stat *)st); }
int lstat64(const char *path, struct stat64 *st) { return lstat(path, (struct stat *)st); }
int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    return fstatat(dirfd, path, (struct stat *)st, flags);
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *sx)
{
    int by_fd = !*path && (flags & AT_EMPTY_PATH) && is_virt(dirfd);
    const char *ip = by_fd ? NULL : image_path(dirfd, path);
    if (by_fd || ip) {
        struct stat st;
        if (image_stat(by_fd ? dirfd : -1, ip, &st) < 0)
            return -1;
        memset(sx, 0, sizeof *sx);
        sx->stx_mask = STATX_BASIC_STATS;
        sx->stx_blksize = (uint32_t)st.st_blksize;
        sx->stx_nlink = (uint32_t)st.st_nlink;
        sx->stx_uid = st.st_uid;
        sx->stx_gid = st.st_gid;
        sx->stx_mode = (uint16_t)st.st_mode;
        sx->stx_ino = st.st_ino;
        sx->stx_size = (uint64_t)st.st_size;
        sx->stx_blocks = (uint64_t)st.st_blocks;
        sx->stx_atime.tv_sec = st.st_atim.tv_sec;
        sx->stx_atime.tv_nsec = (uint32_t)st.st_atim.tv_nsec;
        sx->stx_mtime.tv_sec = st.st_mtim.tv_sec;
        sx->stx_mtime.tv_nsec = (uint32_t)st.st_mtim.tv_nsec;
        sx->stx_ctime.tv_sec = st.st_ctim.tv_sec;
        sx->stx_ctime.tv_nsec = (uint32_t)st.st_ctim.tv_nsec;
        return 0;
    }
    load_statx();
    return real_statx(dirfd, path, flags, mask, sx);
}

int ftruncate(int fd, off_t len)
{
    if (is_virt(fd))
        return (int)done(pyf_ftruncate(fd, NULL, len));
    load_ftruncate();
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }

int truncate(const char *path, off_t len)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)done(pyf_ftruncate(-1, inner(ip), len));
    load_truncate();
    return real_truncate(path, len);
}

int truncate64(const char *path, off_t len) { return truncate(path, len); }

int fsync(int fd)
{
    if (is_virt(fd))
        return (int)done(pyf_fsync(fd));
    load_fsync();
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    if (is_virt(fd))
        return (int)done(pyf_fsync(fd));
    load_fdatasync();
    return real_fdatasync(fd);
}

/* ---- namespace ------------------------------------------------------------------------------- */
int unlink(const char *path)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)done(pyf_unlink(inner(ip), 0));
    load_unlink();
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return (int)done(pyf_unlink(inner(ip), (flags & AT_REMOVEDIR) != 0));
    load_unlinkat();
    return real_unlinkat(dirfd, path, flags);
}

int rmdir(const char *path)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)done(pyf_unlink(inner(ip), 1));
    load_rmdir();
    return real_rmdir(path);
}

int mkdir(const char *path, mode_t mode)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)done(pyf_mkdir(inner(ip), (int)mode));
    load_mkdir();
    return real_mkdir(path, mode);
}

int rename(const char *from, const char *to)
{
    if (HERE(from) || HERE(to))
        return renameat2(AT_FDCWD, from, AT_FDCWD, to, 0);   /* EXDEV across the prefix: mv copies */
    load_rename();
    return real_rename(from, to);
}

REAL(int, renameat, int, const char *, int, const char *)
REAL(int, renameat2, int, const char *, int, const char *, unsigned int)

int renameat2(int olddir, const char *from, int newdir, const char *to, unsigned int flags)
{
    char a[8192];
    const char *ia = image_path(olddir, from);
    if (ia) {                   /* image_path's buffer is reused by the second call */
        snprintf(a, sizeof a, "%s", ia);
        ia = a;
    }
    const char *ib = image_path(newdir, to);
    if (ia && ib)
        return (int)done(pyf_rename(inner(ia), inner(ib), flags));
    if (ia || ib) {
        errno = EXDEV;
        return -1;
    }
    load_renameat2();
    return real_renameat2(olddir, from, newdir, to, flags);
}

int renameat(int olddir, const char *from, int newdir, const char *to)
{
    if (image_path(olddir, from) || image_path(newdir, to))
        return renameat2(olddir, from, newdir, to, 0);
    load_renameat();
    return real_renameat(olddir, from, newdir, to);
}

REAL(int, chdir, const char *)
REAL(int, fchdir, int)
REAL(char *, getcwd, char *, size_t)

int chdir(const char *path)
{
    const char *ip = HERE(path);
    if (ip) {
        struct stat st;
        if (image_stat(-1, ip, &st) < 0)
            return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        if (strlen(ip) >= sizeof vcwd) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memmove(vcwd, ip, strlen(ip) + 1);
        return 0;
    }
    load_chdir();
    int r = real_chdir(path);
    if (r == 0)
        vcwd[0] = 0;
    return r;
}

int fchdir(int fd)
{
    if (is_virt(fd) && vpath[fd]) {
        struct stat st;
        if (image_stat(fd, NULL, &st) < 0)
            return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        if (strlen(vpath[fd]) >= sizeof vcwd) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(vcwd, vpath[fd], strlen(vpath[fd]) + 1);
        return 0;
    }
    load_fchdir();
    int r = real_fchdir(fd);
    if (r == 0)
        vcwd[0] = 0;
    return r;
}

char *getcwd(char *buf, size_t size)
{
    if (!vcwd[0]) {
        load_getcwd();
        return real_getcwd(buf, size);
    }
    size_t n = strlen(vcwd) + 1;
    if (!buf) {
        buf = malloc(size > n ? size : n);
        if (!buf) {
            errno = ENOMEM;
            return NULL;
        }
        size = size > n ? size : n;
    }
    if (size < n) {
        errno = ERANGE;
        return NULL;
    }
    memcpy(buf, vcwd, n);
    return buf;
}

/* ---- descriptors ------------------------------------------------------------------------------ */
static int dup_shadow(int oldfd, int newfd)
{
    if (newfd < 0)
        return -1;
    if (newfd >= MAX_FDS) {
        load_close();
        real_close(newfd);
        errno = EMFILE;
        return -1;
    }
    if (is_virt(newfd) && newfd != oldfd) {
        clear_virt(newfd);
        done(pyf_close(newfd));
    }
    if (is_virt(oldfd) && newfd != oldfd) {
        if (done(pyf_dup(oldfd, newfd)) < 0)
            return -1;
        set_virt(newfd, vpath[oldfd]);
    }
    return newfd;
}

int dup(int fd)
{
    load_dup();
    int n = real_dup(fd);
    return n < 0 ? n : dup_shadow(fd, n);
}

int dup2(int fd, int newfd)
{
    load_dup2();
    if (is_virt(newfd) && newfd != fd) {
        clear_virt(newfd);
        done(pyf_close(newfd));
    }
    int n = real_dup2(fd, newfd);
    return n < 0 ? n : dup_shadow(fd, n);
}

int dup3(int fd, int newfd, int flags)
{
    load_dup3();
    if (is_virt(newfd) && newfd != fd) {
        clear_virt(newfd);
        done(pyf_close(newfd));
    }
    int n = real_dup3(fd, newfd, flags);
    return n < 0 ? n : dup_shadow(fd, n);
}

REAL(int, fcntl, int, int, ...)

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);            /* an int or a pointer: both fit, as in glibc */
    va_end(ap);
    load_fcntl();
    int r = real_fcntl(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && is_virt(fd))
        return dup_shadow(fd, r);
    return r;
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    return fcntl(fd, cmd, arg);
}

/* ---- allocation ------------------------------------------------------------------------------- */
int fallocate2(int fd, int mode, off_t offset, off_t len, uint64_t physical)
{
    if (is_virt(fd))
        return (int)done(pyf_fallocate(fd, mode, offset, len, physical));
    if (physical != NO_HINT) {       /* a host file: its kernel has no placement hint */
        errno = EOPNOTSUPP;
        return -1;
    }
    load_fallocate();
    return real_fallocate(fd, mode, offset, len);
}

int fallocate(int fd, int mode, off_t offset, off_t len) { return fallocate2(fd, mode, offset, len, NO_HINT); }
int fallocate64(int fd, int mode, off_t offset, off_t len) { return fallocate(fd, mode, offset, len); }

int posix_fallocate(int fd, off_t offset, off_t len)
{
    if (is_virt(fd)) {
        int saved = errno, r = 0;
        if (done(pyf_fallocate(fd, 0, offset, len, NO_HINT)) < 0)
            r = errno;
        errno = saved;
        return r;               /* the error number, not -1 and errno */
    }
    load_posix_fallocate();
    return real_posix_fallocate(fd, offset, len);
}

int posix_fallocate64(int fd, off_t offset, off_t len) { return posix_fallocate(fd, offset, len); }

long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_fallocate || nr == SYS_FALLOCATE2) {
        uint64_t physical = nr == SYS_FALLOCATE2 ? (uint64_t)a[4] : NO_HINT;
        if (nr == SYS_FALLOCATE2 && !is_virt((int)a[0])) {
            errno = EOPNOTSUPP;          /* the host file's filesystem cannot place blocks */
            return -1;
        }
        return fallocate2((int)a[0], (int)a[1], (off_t)a[2], (off_t)a[3], physical);
    }
    load_syscall();
    return real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ---- directory streams ------------------------------------------------------------------------ */
#define MAX_DIRS 256
struct image_dir {
    int fd;
    char *data, *next, *end;     /* entries as "ino type name\0", one after the other */
    struct dirent64 ent;
};
static struct image_dir *dirs[MAX_DIRS];

REAL(DIR *, opendir, const char *)
REAL(DIR *, fdopendir, int)
REAL(struct dirent *, readdir, DIR *)
REAL(struct dirent64 *, readdir64, DIR *)
REAL(int, closedir, DIR *)
REAL(int, dirfd, DIR *)
REAL(void, rewinddir, DIR *)

static struct image_dir *ours(DIR *d)
{
    for (int i = 0; i < MAX_DIRS; i++)
        if (dirs[i] && (DIR *)dirs[i] == d)
            return dirs[i];
    return NULL;
}

static int load_entries(struct image_dir *d)
{
    long long need = done(pyf_listdir(d->fd, NULL, 0));
    if (need < 0)
        return -1;
    free(d->data);
    d->data = malloc((size_t)need + 1);
    if (!d->data) {
        errno = ENOMEM;
        return -1;
    }
    long long got = done(pyf_listdir(d->fd, d->data, need));
    if (got < 0)
        return -1;
    d->next = d->data;
    d->end = d->data + got;
    return 0;
}

static DIR *image_fdopendir(int fd)
{
    int slot = 0;
    while (slot < MAX_DIRS && dirs[slot])
        slot++;
    struct image_dir *d = calloc(1, sizeof *d);
    if (slot == MAX_DIRS || !d) {
        free(d);
        errno = EMFILE;
        return NULL;
    }
    d->fd = fd;
    if (load_entries(d) < 0) {
        int e = errno;
        free(d->data);
        free(d);
        errno = e;
        return NULL;
    }
    dirs[slot] = d;
    return (DIR *)d;
}

DIR *opendir(const char *path)
{
    const char *ip = HERE(path);
    if (ip) {
        int fd = open_image(ip, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0)
            return NULL;
        DIR *d = image_fdopendir(fd);
        if (!d) {
            int e = errno;
            close(fd);
            errno = e;
        }
        return d;
    }
    load_opendir();
    return real_opendir(path);
}

DIR *fdopendir(int fd)
{
    if (is_virt(fd))
        return image_fdopendir(fd);
    load_fdopendir();
    return real_fdopendir(fd);
}

struct dirent64 *readdir64(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_readdir64();
        return real_readdir64(dir);
    }
    if (d->next >= d->end)
        return NULL;            /* the end: errno untouched */
    unsigned long long ino;
    int type, used = 0;
    sscanf(d->next, "%llu %d %n", &ino, &type, &used);
    memset(&d->ent, 0, sizeof d->ent);
    d->ent.d_ino = ino;
    d->ent.d_type = (unsigned char)type;
    d->ent.d_reclen = sizeof d->ent;
    snprintf(d->ent.d_name, sizeof d->ent.d_name, "%s", d->next + used);
    d->next += strlen(d->next) + 1;
    d->ent.d_off = d->next - d->data;
    return &d->ent;
}

struct dirent *readdir(DIR *dir)
{
    if (!ours(dir)) {
        load_readdir();
        return real_readdir(dir);
    }
    return (struct dirent *)readdir64(dir);      /* the same layout on 64-bit Linux */
}

int closedir(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_closedir();
        return real_closedir(dir);
    }
    for (int i = 0; i < MAX_DIRS; i++)
        if (dirs[i] == d)
            dirs[i] = NULL;
    int r = close(d->fd);
    free(d->data);
    free(d);
    return r;
}

int dirfd(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_dirfd();
        return real_dirfd(dir);
    }
    return d->fd;
}

void rewinddir(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_rewinddir();
        real_rewinddir(dir);
        return;
    }
    load_entries(d);
}

/* ---- stdio: a FILE whose reads and writes come back through this shim ------------------------- */
REAL(FILE *, fopen, const char *, const char *)
REAL(FILE *, fopen64, const char *, const char *)

static ssize_t ck_read(void *c, char *buf, size_t n) { return read((int)(intptr_t)c, buf, n); }
static ssize_t ck_write(void *c, const char *buf, size_t n) { return write((int)(intptr_t)c, buf, n); }
static int ck_close(void *c) { return close((int)(intptr_t)c); }
static int ck_seek(void *c, off64_t *pos, int whence)
{
    off_t r = lseek((int)(intptr_t)c, (off_t)*pos, whence);
    if (r < 0)
        return -1;
    *pos = r;
    return 0;
}

static int stdio_flags(const char *mode)
{
    int flags = mode[0] == 'r' ? 0 : mode[0] == 'w' ? O_CREAT | O_TRUNC : O_CREAT | O_APPEND;
    int rw = strchr(mode, '+') != NULL;
    flags |= rw ? O_RDWR : mode[0] == 'r' ? O_RDONLY : O_WRONLY;
    if (strchr(mode, 'x'))
        flags |= O_EXCL;
    if (strchr(mode, 'e'))
        flags |= O_CLOEXEC;
    return flags;
}

static FILE *image_fopen(const char *path, const char *mode)
{
    if (!strchr("rwa", mode[0])) {
        errno = EINVAL;
        return NULL;
    }
    int fd = open_image(path, stdio_flags(mode), 0666);
    if (fd < 0)
        return NULL;
    cookie_io_functions_t io = {ck_read, ck_write, ck_seek, ck_close};
    FILE *f = fopencookie((void *)(intptr_t)fd, mode, io);
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

FILE *fopen(const char *path, const char *mode)
{
    const char *ip = HERE(path);
    if (ip)
        return image_fopen(ip, mode);
    load_fopen();
    return real_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
    const char *ip = HERE(path);
    if (ip)
        return image_fopen(ip, mode);
    load_fopen64();
    return real_fopen64(path, mode);
}

/* ---- vectors, access, statfs, close_range ------------------------------------------------------- */
REAL(ssize_t, readv, int, const struct iovec *, int)
REAL(ssize_t, writev, int, const struct iovec *, int)
REAL(int, access, const char *, int)
REAL(int, faccessat, int, const char *, int, int)
REAL(int, statfs, const char *, struct statfs *)
REAL(int, fstatfs, int, struct statfs *)
REAL(int, close_range, unsigned int, unsigned int, int)

/* one read or write per vector element, stopping at the first short one, as the kernel does */
static ssize_t each_iov(int fd, const struct iovec *iov, int n, ssize_t (*op)(int, void *, size_t))
{
    ssize_t total = 0;
    for (int i = 0; i < n; i++) {
        ssize_t r = op(fd, iov[i].iov_base, iov[i].iov_len);
        if (r < 0)
            return total ? total : -1;
        total += r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return total;
}

static ssize_t write_op(int fd, void *buf, size_t n) { return write(fd, buf, n); }

ssize_t readv(int fd, const struct iovec *iov, int n)
{
    if (is_virt(fd))
        return each_iov(fd, iov, n, read);
    load_readv();
    return real_readv(fd, iov, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (is_virt(fd))
        return each_iov(fd, iov, n, write_op);
    load_writev();
    return real_writev(fd, iov, n);
}

int faccessat(int dirfd, const char *path, int mode, int flags)
{
    const char *ip = image_path(dirfd, path);
    if (ip) {
        struct stat st;             /* existence; permission bits are stored, not enforced */
        return image_stat(-1, ip, &st);
    }
    load_faccessat();
    return real_faccessat(dirfd, path, mode, flags);
}

int access(const char *path, int mode)
{
    if (HERE(path))
        return faccessat(AT_FDCWD, path, mode, 0);
    load_access();
    return real_access(path, mode);
}

#define PYFALLOC_MAGIC 0x50594641         /* "PYFA" */

static int image_statfs(struct statfs *sf)
{
    long long v[8];
    if (done(pyf_statfs(v)) < 0)
        return -1;
    memset(sf, 0, sizeof *sf);
    sf->f_type = PYFALLOC_MAGIC;
    sf->f_bsize = v[0];
    sf->f_frsize = v[0];
    sf->f_blocks = (fsblkcnt_t)v[1];
    sf->f_bfree = (fsblkcnt_t)v[2];
    sf->f_bavail = (fsblkcnt_t)v[3];
    sf->f_files = (fsfilcnt_t)v[4];
    sf->f_ffree = (fsfilcnt_t)v[5];
    sf->f_namelen = v[6];
    return 0;
}

int statfs(const char *path, struct statfs *sf)
{
    if (HERE(path))
        return image_statfs(sf);
    load_statfs();
    return real_statfs(path, sf);
}

int fstatfs(int fd, struct statfs *sf)
{
    if (is_virt(fd))
        return image_statfs(sf);
    load_fstatfs();
    return real_fstatfs(fd, sf);
}

int statfs64(const char *path, struct statfs64 *sf) { return statfs(path, (struct statfs *)sf); }
int fstatfs64(int fd, struct statfs64 *sf) { return fstatfs(fd, (struct statfs *)sf); }

int close_range(unsigned int first, unsigned int last, int flags)
{
    /* the image files in the range close through close(), so their handles go too */
    if (!(flags & CLOSE_RANGE_CLOEXEC))
        for (unsigned int fd = first; fd <= last && fd < MAX_FDS; fd++)
            if (virt[fd])
                close((int)fd);
    load_close_range();
    return real_close_range(first, last, flags);
}

/* ---- ioctl ------------------------------------------------------------------------------------ */
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
        if (!arg) {
            errno = EFAULT;
            return -1;
        }
        return (int)done(pyf_ioctl(fd, req, arg, ioctl_size(req, arg)));
    }
    load_ioctl();
    return real_ioctl(fd, req, arg);
}

ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    if (is_virt(in) || is_virt(out)) {
        errno = EXDEV;          /* cp and cat fall back to read and write */
        return -1;
    }
    load_copy_file_range();
    return real_copy_file_range(in, in_off, out, out_off, len, flags);
}
