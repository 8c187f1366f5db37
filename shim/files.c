/* Descriptor calls on image files: open, close, data, stat, truncate, sync, dup, fcntl. The
 * file position and O_APPEND live in the shadow's kernel description; Python is told them. */
#include "interpose.h"
#include <sys/sysmacros.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <limits.h>
#include <sys/uio.h>

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
REAL(int, ftruncate, int, off_t)
REAL(int, truncate, const char *, off_t)
REAL(int, fsync, int)
REAL(int, fdatasync, int)
REAL(int, dup, int)
REAL(int, dup2, int, int)
REAL(int, dup3, int, int, int)
REAL(int, fcntl, int, int, ...)
REAL(int, close_range, unsigned int, unsigned int, int)
REAL(ssize_t, readv, int, const struct iovec *, int)
REAL(ssize_t, writev, int, const struct iovec *, int)
REAL(int, posix_fadvise, int, off_t, off_t, int)
REAL(ssize_t, sendfile, int, int, off_t *, size_t)
REAL(ssize_t, copy_file_range, int, off_t *, int, off_t *, size_t, unsigned int)
REAL(ssize_t, splice, int, off_t *, int, off_t *, size_t, unsigned int)

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

static int failed(int e)
{
    errno = e;
    return -1;
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
    int fd = keep_high(real_open(alias(path), flags, mode));
    opened_host(fd, AT_FDCWD, alias(path));
    return fd;
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
    int fd = keep_high(real_openat(alias_dir(dirfd, path), alias(path), flags, mode));
    opened_host(fd, alias_dir(dirfd, path), alias(path));
    return fd;
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

/* an image file's descriptor goes: Python drops its handle when the description has no
 * other descriptor in this process */
static void drop_virt(int fd)
{
    clear_virt(fd);
    if (!close_unclaimed(fd))
        PY(pyf_close(fd));
}

int close(int fd)
{
    load_close();
    if (fd_noted(fd) && !own_process())     /* a vfork child: its descriptors, the parent's memory */
        return real_close(fd);
    if (own_fd(fd)) {
        if (!in_py)
            return 0;           /* the program cannot close the shim's metadata under it */
        forget_own(fd);
    }
    if (fd >= 0 && fd <= 2)
        std_before_change(fd);
    uring_closed(fd);
    int was = is_virt(fd);
    if (was)
        drop_virt(fd);
    copied_fd(-1, fd);
    int r = real_close(fd);
    if (was && fd <= 2)
        std_rebind(fd);
    return r;
}

int close_range(unsigned int first, unsigned int last, int flags)
{
    load_close_range();
    if (!own_process())
        return real_close_range(first, last, flags);
    if (first > last)
        return real_close_range(first, last, flags);
    for (unsigned int fd = first; fd <= last && fd < MAX_FDS; fd++) {
        if (own_fd((int)fd)) {   /* around the shim's own: they are close-on-exec already */
            if (fd > first && real_close_range(first, fd - 1, flags) < 0)
                return -1;
            if (fd == last)
                return 0;
            first = fd + 1;
        } else if (is_virt((int)fd) && !(flags & CLOSE_RANGE_CLOEXEC)) {
            close((int)fd);
        }
    }
    return real_close_range(first, last, flags);
}

/* glibc's closefrom calls close_range from inside itself: the shim's own descriptors, and
 * image files, need the same care */
void closefrom(int lowfd)
{
    if (lowfd < 0)
        lowfd = 0;
    close_range((unsigned int)lowfd, ~0U, 0);
}

/* ---- data ------------------------------------------------------------------------------------ */
static ssize_t image_read(int fd, void *buf, size_t n)
{
    off_t pos = k_lseek(fd, 0, SEEK_CUR);
    if (pos < 0)
        return -1;
    long long r = image_pread(fd, buf, n, pos);
    if (r > 0)
        k_lseek(fd, pos + r, SEEK_SET);
    return r;
}

enum { AS_OPENED, APPEND, NOAPPEND };   /* pwritev2's RWF_APPEND and RWF_NOAPPEND */

/* at off, or (off < 0) at the position; O_APPEND writes at the end, as the kernel does even
 * for pwrite, unless `how` says otherwise. On an O_SYNC or O_DSYNC description a write is
 * durable when it returns: Python commits after the writes it serves, and one served here
 * is committed here. */
static ssize_t image_write_how(int fd, const void *buf, size_t n, off_t off, int how)
{
    int at_position = off < 0;
    int fl = k_fcntl(fd, F_GETFL, 0);
    int append = how == APPEND || (how == AS_OPENED && fl >= 0 && (fl & O_APPEND));
    if (at_position && !append && (off = k_lseek(fd, 0, SEEK_CUR)) < 0)
        return -1;
    if (DIO_MISALIGNED(fd, append ? 0 : off, buf, n))
        return failed(EINVAL);
    if (!append) {
        ssize_t fast = image_pwrite_fast(fd, buf, n, off);
        if (fast == -1)
            return -1;
        if (fast >= 0) {
            if (at_position)
                k_lseek(fd, off + fast, SEEK_SET);
            if (fast > 0 && fl >= 0 && (fl & O_DSYNC) && PY(pyf_fsync(fd)) < 0)
                return -1;
            return fast;
        }
    }
    long long end = 0;
    long long r = PY(pyf_write(fd, buf, (long long)n, append ? -1 : off, &end));
    if (r >= 0 && at_position)
        k_lseek(fd, end, SEEK_SET);
    return r;
}

static ssize_t image_write(int fd, const void *buf, size_t n, off_t off)
{
    return image_write_how(fd, buf, n, off, AS_OPENED);
}

ssize_t read(int fd, void *buf, size_t n)
{
    if (is_virt(fd))
        return image_read(fd, buf, n);
    load_read();
    return real_read(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (is_virt(fd))
        return image_write(fd, buf, n, -1);
    load_write();
    return real_write(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    if (is_virt(fd))
        return image_pread(fd, buf, n, off);
    load_pread();
    return real_pread(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (is_virt(fd))
        return off < 0 ? failed(EINVAL) : image_write(fd, buf, n, off);  /* < 0 means "at the position" there */
    load_pwrite();
    return real_pwrite(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

/* ---- vectors: readv/writev, preadv/pwritev, preadv2/pwritev2 -------------------------------- */
#ifndef RWF_NOAPPEND
#define RWF_NOAPPEND 0x20
#endif
#ifndef RWF_ATOMIC
#define RWF_ATOMIC 0x40
#endif
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x80          /* ext4 takes it since Linux 6.15; the image has no page cache to drop */
#endif
#define RWF_KNOWN (RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND | RWF_NOAPPEND | RWF_ATOMIC \
                   | RWF_DONTCACHE)

/* one read or write per element, at off (off < 0: at the position), stopping at the first
 * short one */
static ssize_t each_iov(int fd, const struct iovec *iov, int n, off_t off, int writing, int how)
{
    if (n < 0 || n > IOV_MAX)
        return failed(EINVAL);
    for (int i = 0; i < n; i++)             /* O_DIRECT: every piece, before any moves */
        if (DIO_MISALIGNED(fd, 0, iov[i].iov_base, iov[i].iov_len))
            return failed(EINVAL);
    ssize_t total = 0;
    for (int i = 0; i < n; i++) {
        off_t at = off < 0 ? -1 : off + total;
        ssize_t r = writing ? image_write_how(fd, iov[i].iov_base, iov[i].iov_len, at, how)
                    : at < 0 ? image_read(fd, iov[i].iov_base, iov[i].iov_len)
                             : image_pread(fd, iov[i].iov_base, iov[i].iov_len, at);
        if (r < 0)
            return total ? total : -1;
        total += r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return total;
}

/* preadv2/pwritev2 on an image file: the RWF_ flags as ext4 takes them for buffered I/O */
static ssize_t image_rw2(int fd, const struct iovec *iov, int n, off_t off, int flags, int writing)
{
    if (flags & ~RWF_KNOWN)
        return failed(EOPNOTSUPP);
    if (flags & RWF_ATOMIC)                 /* no atomic-write unit on this device */
        return failed(EOPNOTSUPP);
    if (writing && flags & RWF_NOWAIT)      /* ext4 refuses non-blocking buffered writes */
        return failed(EOPNOTSUPP);
    if (off < -1)
        return failed(EINVAL);
    int how = flags & RWF_APPEND ? APPEND : flags & RWF_NOAPPEND ? NOAPPEND : AS_OPENED;
    ssize_t r = each_iov(fd, iov, n, off, writing, how);
    if (r > 0 && writing && flags & (RWF_DSYNC | RWF_SYNC) && PY(pyf_fsync(fd)) < 0)
        return -1;
    return r;
}

REAL(ssize_t, preadv, int, const struct iovec *, int, off_t)
REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t)
REAL(ssize_t, preadv2, int, const struct iovec *, int, off_t, int)
REAL(ssize_t, pwritev2, int, const struct iovec *, int, off_t, int)

ssize_t readv(int fd, const struct iovec *iov, int n)
{
    if (is_virt(fd))
        return each_iov(fd, iov, n, -1, 0, AS_OPENED);
    load_readv();
    return real_readv(fd, iov, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (is_virt(fd))
        return each_iov(fd, iov, n, -1, 1, AS_OPENED);
    load_writev();
    return real_writev(fd, iov, n);
}

ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    if (is_virt(fd))
        return off < 0 ? failed(EINVAL) : each_iov(fd, iov, n, off, 0, AS_OPENED);
    load_preadv();
    return real_preadv(fd, iov, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (is_virt(fd))
        return off < 0 ? failed(EINVAL) : each_iov(fd, iov, n, off, 1, AS_OPENED);
    load_pwritev();
    return real_pwritev(fd, iov, n, off);
}

ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    if (is_virt(fd))
        return image_rw2(fd, iov, n, off, flags, 0);
    load_preadv2();
    return real_preadv2(fd, iov, n, off, flags);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    if (is_virt(fd))
        return image_rw2(fd, iov, n, off, flags, 1);
    load_pwritev2();
    return real_pwritev2(fd, iov, n, off, flags);
}

ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off) { return preadv(fd, iov, n, off); }
ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off) { return pwritev(fd, iov, n, off); }
ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    return preadv2(fd, iov, n, off, flags);
}
ssize_t pwritev64v2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
    return pwritev2(fd, iov, n, off, flags);
}

off_t lseek(int fd, off_t off, int whence)
{
    if (is_virt(fd)) {
        off_t pos = k_lseek(fd, 0, SEEK_CUR);
        if (pos < 0)
            return -1;
        long long r = PY(pyf_lseek(fd, off, whence, pos));
        return r < 0 ? -1 : k_lseek(fd, r, SEEK_SET);
    }
    load_lseek();
    return real_lseek(fd, off, whence);
}

off_t lseek64(int fd, off_t off, int whence) { return lseek(fd, off, whence); }

/* readahead(2): its descriptor check, then the range read ahead as fadvise's WILLNEED
   (the image's pages in the host's page cache) */
REAL(ssize_t, readahead, int, off_t, size_t)
ssize_t readahead(int fd, off_t off, size_t count)
{
    if (is_virt(fd)) {
        if (vacc[fd] == O_WRONLY)
            return failed(EBADF);
        int saved = errno;
        (void)PY(pyf_fadvise(fd, off, count > (size_t)LLONG_MAX ? LLONG_MAX : (off_t)count, POSIX_FADV_WILLNEED));
        errno = saved;          /* a hint: its own failures are not readahead's */
        return 0;
    }
    load_readahead();
    return real_readahead(fd, off, count);
}

int posix_fadvise(int fd, off_t off, off_t len, int advice)
{
    if (is_virt(fd)) {
        int saved = errno, r = PY(pyf_fadvise(fd, off, len, advice)) < 0 ? errno : 0;
        errno = saved;
        return r;               /* the error number, as posix_fallocate */
    }
    load_posix_fadvise();
    return real_posix_fadvise(fd, off, len, advice);
}

int posix_fadvise64(int fd, off_t off, off_t len, int advice) { return posix_fadvise(fd, off, len, advice); }

/* ---- metadata -------------------------------------------------------------------------------- */
enum { ST_MODE, ST_INO, ST_NLINK, ST_UID, ST_GID, ST_SIZE, ST_ATIME, ST_MTIME, ST_CTIME, ST_BLKSIZE,
       ST_BLOCKS, ST_ATIME_NS, ST_MTIME_NS, ST_CTIME_NS, ST_DEV, ST_RDEV, ST_N };

/* by descriptor (fd >= 0) or by path; nofollow: a last symbolic link itself (lstat) */
static int stat_of(int fd, const char *path, struct stat *st, int nofollow)
{
    long long v[ST_N];
    if (fd < 0) {
        const char *ip = inner(path);
        unsigned long long pos[2];
        int known = log_position(pos);
        int hit = known ? answer_lookup(ANSWERS_STAT, ip, nofollow, pos, v, ST_N) : 0;
        if (hit < 0)
            return -1;
        if (!hit) {
            if (PY(pyf_stat(PATH_FD(nofollow), ip, v)) < 0) {
                const char *host = left_image();
                if (host) {
                    if (nofollow) {
                        load_lstat();
                        return real_lstat(host, st);
                    }
                    load_stat();
                    return real_stat(host, st);
                }
                int e = errno;
                if (known && (e == ENOENT || e == ENOTDIR || e == EACCES || e == ENAMETOOLONG || e == ELOOP))
                    answer_remember(ANSWERS_STAT, ip, nofollow, pos, v, ST_N, e);
                errno = e;
                return -1;
            }
            if (known)
                answer_remember(ANSWERS_STAT, ip, nofollow, pos, v, ST_N, 0);
        }
    } else if (PY(pyf_stat(fd, inner(path), v)) < 0)
        return -1;
    memset(st, 0, sizeof *st);
    st->st_mode = (mode_t)v[ST_MODE];
    st->st_ino = (ino_t)v[ST_INO];
    st->st_dev = (dev_t)v[ST_DEV];
    st->st_rdev = (dev_t)v[ST_RDEV];
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

int image_stat(int fd, const char *path, struct stat *st) { return stat_of(fd, path, st, 0); }
int image_lstat(const char *path, struct stat *st) { return stat_of(-1, path, st, 1); }

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
    return real_stat(alias(path), st);
}

int lstat(const char *path, struct stat *st)
{
    const char *ip = HERE(path);
    if (ip)
        return image_lstat(ip, st);
    load_lstat();
    return real_lstat(alias(path), st);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    if (!*path && (flags & AT_EMPTY_PATH) && is_virt(dirfd))
        return image_stat(dirfd, NULL, st);
    const char *ip = image_path(dirfd, path);
    if (ip)
        return flags & AT_SYMLINK_NOFOLLOW ? image_lstat(ip, st) : image_stat(-1, ip, st);
    load_fstatat();
    return real_fstatat(alias_dir(dirfd, path), alias(path), st, flags);
}

int fstat64(int fd, struct stat64 *st) { return fstat(fd, (struct stat *)st); }
int stat64(const char *path, struct stat64 *st) { return stat(path, (struct stat *)st); }
int lstat64(const char *path, struct stat64 *st) { return lstat(path, (struct stat *)st); }
int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    return fstatat(dirfd, path, (struct stat *)st, flags);
}

/* glibc < 2.33 compiled stat calls into these; on x86_64 the version's struct is struct stat */
int __xstat(int ver, const char *path, struct stat *st) { (void)ver; return stat(path, st); }
int __lxstat(int ver, const char *path, struct stat *st) { (void)ver; return lstat(path, st); }
int __fxstat(int ver, int fd, struct stat *st) { (void)ver; return fstat(fd, st); }
int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
    (void)ver;
    return fstatat(dirfd, path, st, flags);
}
int __xstat64(int ver, const char *path, struct stat64 *st) { return __xstat(ver, path, (struct stat *)st); }
int __lxstat64(int ver, const char *path, struct stat64 *st) { return __lxstat(ver, path, (struct stat *)st); }
int __fxstat64(int ver, int fd, struct stat64 *st) { return __fxstat(ver, fd, (struct stat *)st); }
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
    return __fxstatat(ver, dirfd, path, (struct stat *)st, flags);
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *sx)
{
    int by_fd = !*path && (flags & AT_EMPTY_PATH) && is_virt(dirfd);
    const char *ip = by_fd ? NULL : image_path(dirfd, path);
    if (by_fd || ip) {
        struct stat st;
        if ((by_fd ? image_stat(dirfd, NULL, &st)
                   : flags & AT_SYMLINK_NOFOLLOW ? image_lstat(ip, &st) : image_stat(-1, ip, &st)) < 0)
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
        sx->stx_dev_major = (uint32_t)(st.st_dev >> 8);
        sx->stx_dev_minor = (uint32_t)(st.st_dev & 0xff);
        sx->stx_rdev_major = major(st.st_rdev);
        sx->stx_rdev_minor = minor(st.st_rdev);
        return 0;
    }
    load_statx();
    return real_statx(alias_dir(dirfd, path), alias(path), flags, mask, sx);
}

int ftruncate(int fd, off_t len)
{
    if (is_virt(fd))
        return (int)PY(pyf_ftruncate(fd, NULL, len));
    load_ftruncate();
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }

int truncate(const char *path, off_t len)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)OR_HOST(PY(pyf_ftruncate(-1, inner(ip), len)), (load_truncate(), real_truncate(host, len)));
    load_truncate();
    return real_truncate(alias(path), len);
}

int truncate64(const char *path, off_t len) { return truncate(path, len); }

int fsync(int fd)
{
    if (is_virt(fd))
        return (int)PY(pyf_fsync(fd));
    load_fsync();
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    if (is_virt(fd))
        return (int)PY(pyf_fsync(fd));
    load_fdatasync();
    return real_fdatasync(fd);
}

/* sync and syncfs make the image's metadata durable too: a commit of the journal */
REAL(void, sync, void)
REAL(int, syncfs, int)

void sync(void)
{
    load_sync();
    real_sync();
    if (python_ready())
        PY(pyf_fsync(-1));
}

int syncfs(int fd)
{
    if (is_virt(fd))
        return (int)PY(pyf_fsync(-1));
    load_syncfs();
    return real_syncfs(fd);
}

/* ---- descriptors ------------------------------------------------------------------------------ */
/* newfd now shares oldfd's kernel description; Python shares the handle */
static int dup_shadow(int oldfd, int newfd)
{
    if (newfd < 0)
        return -1;
    copied_fd(oldfd, newfd);
    if (newfd >= MAX_FDS) {
        k_close(newfd);
        return failed(EMFILE);
    }
    if (is_virt(oldfd) && newfd != oldfd) {
        if (PY(pyf_dup(oldfd, newfd)) < 0) {
            int e = errno;
            k_close(newfd);
            return failed(e);
        }
        set_virt(newfd, vpath[oldfd], vacc[oldfd] | (vdirect[oldfd] ? O_DIRECT : 0));
    }
    if (newfd <= 2)
        std_rebind(newfd);
    return newfd;
}

/* dup2 and dup3 onto newfd: what stood there goes first, as close() would take it */
static int before_dup_onto(int fd, int newfd)
{
    if (k_fcntl(fd, F_GETFD, 0) < 0)
        return -1;                          /* EBADF: newfd stays as it was */
    if (own_fd(newfd) && !in_py)
        return failed(EBUSY);
    if (newfd == fd)
        return 0;
    if (newfd >= 0 && newfd <= 2)
        std_before_change(newfd);
    if (is_virt(newfd))
        drop_virt(newfd);
    return 0;
}

int dup(int fd)
{
    load_dup();
    int n = real_dup(fd);
    if (in_py)
        return keep_high(n);    /* Python's own (mmap keeps a dup of the file it maps) */
    if (n < 0 || ((fd_noted(fd) || fd_noted(n)) && !own_process()))
        return n;
    return dup_shadow(fd, n);
}

int dup2(int fd, int newfd)
{
    load_dup2();
    if ((fd_noted(fd) || fd_noted(newfd)) && !own_process())
        return real_dup2(fd, newfd);
    if (before_dup_onto(fd, newfd) < 0)
        return -1;
    int n = real_dup2(fd, newfd);
    if (n < 0 && newfd <= 2)
        std_rebind(newfd);
    return n < 0 ? n : dup_shadow(fd, n);
}

int dup3(int fd, int newfd, int flags)
{
    load_dup3();
    if ((fd_noted(fd) || fd_noted(newfd)) && !own_process())
        return real_dup3(fd, newfd, flags);
    if (fd == newfd)
        return failed(EINVAL);
    if (before_dup_onto(fd, newfd) < 0)
        return -1;
    int n = real_dup3(fd, newfd, flags);
    if (n < 0 && newfd <= 2)
        std_rebind(newfd);
    return n < 0 ? n : dup_shadow(fd, n);
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);            /* an int or a pointer: both fit, as in glibc */
    va_end(ap);
    load_fcntl();
    int r = real_fcntl(fd, cmd, arg);
    if (is_virt(fd) && cmd == F_SETFL) {
        if (r < 0 && errno == EINVAL && (arg & O_DIRECT))   /* a tmpfs without O_DIRECT */
            r = real_fcntl(fd, cmd, arg & ~(long)O_DIRECT);
        if (r >= 0 && fd < MAX_FDS)
            vdirect[fd] = (arg & O_DIRECT) != 0;
    }
    int dups = cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC;
    if (in_py && dups)
        return keep_high(r);                /* Python's own: its dup() is this */
    if (r < 0 || !is_virt(fd))
        return r;
    if (dups)
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

/* ---- copies between descriptors ------------------------------------------------------------- */
/* sendfile through read and write, from *off (the position left alone) or the position */
static ssize_t copy_through(int out, int in, off_t *off, size_t count)
{
    char buf[65536] __attribute__((aligned(4096)));     /* O_DIRECT files: see copy_range_image */
    size_t total = 0;
    while (total < count) {
        size_t want = count - total < sizeof buf ? count - total : sizeof buf;
        ssize_t got = off ? pread(in, buf, want, *off) : read(in, buf, want);
        if (got <= 0) {
            if (got < 0 && !total)
                return -1;
            break;
        }
        ssize_t put = 0;
        while (put < got) {
            ssize_t w = write(out, buf + put, (size_t)(got - put));
            if (w < 0) {
                if (!off && got > put)      /* give back what was read and not written */
                    lseek(in, put - got, SEEK_CUR);
                if (!total && !put)
                    return -1;
                if (off)
                    *off += put;
                return (ssize_t)(total + put);
            }
            put += w;
        }
        total += (size_t)got;
        if (off)
            *off += got;
        if ((size_t)got < want)
            break;
    }
    return (ssize_t)total;
}

ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
    if (is_virt(in) || is_virt(out))
        return copy_through(out, in, off, count);
    load_sendfile();
    return real_sendfile(out, in, off, count);
}

ssize_t sendfile64(int out, int in, off_t *off, size_t count) { return sendfile(out, in, off, count); }

/* copy_file_range between two image files: the kernel's checks in vfs_copy_file_range's
 * order, then what its generic fallback (a splice) does: up to len bytes, short at the
 * input's end, from and to the offsets given or the positions (moved). */
static ssize_t copy_range_image(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    if (flags)
        return failed(EINVAL);
    struct stat si, so;
    if (image_stat(in, NULL, &si) < 0 || image_stat(out, NULL, &so) < 0)
        return -1;
    if (S_ISDIR(si.st_mode) || S_ISDIR(so.st_mode))
        return failed(EISDIR);
    if (!S_ISREG(si.st_mode) || !S_ISREG(so.st_mode))
        return failed(EINVAL);
    if (vacc[in] == O_WRONLY || vacc[out] == O_RDONLY || (k_fcntl(out, F_GETFL, 0) & O_APPEND))
        return failed(EBADF);
    off_t ip = in_off ? *in_off : lseek(in, 0, SEEK_CUR), op = out_off ? *out_off : lseek(out, 0, SEEK_CUR);
    if (ip < 0 || op < 0 || len > (size_t)(LLONG_MAX - ip) || len > (size_t)(LLONG_MAX - op))
        return failed(EOVERFLOW);       /* the kernel adds them as unsigned */
    len = ip >= si.st_size ? 0 : (off_t)len > si.st_size - ip ? (size_t)(si.st_size - ip) : len;   /* to EOF */
    long long room = fsize_room(op, (long long)len, NULL);
    if (room < 0)
        return -1;
    len = (size_t)room;
    if (si.st_ino == so.st_ino && op + (off_t)len > ip && op < ip + (off_t)len)
        return failed(EINVAL);
    if (!len)
        return 0;
    /* aligned: on O_DIRECT files the copy's reads and writes pass DIO_MISALIGNED when the
     * caller's offsets and length do, as the kernel's in-kernel copy needs only those */
    char buf[65536] __attribute__((aligned(4096)));
    size_t total = 0;
    while (total < len) {
        size_t want = len - total < sizeof buf ? len - total : sizeof buf;
        ssize_t got = pread(in, buf, want, ip + (off_t)total);
        if (got <= 0) {
            if (got < 0 && !total)
                return -1;
            break;
        }
        ssize_t put = 0;
        while (put < got) {
            ssize_t w = pwrite(out, buf + put, (size_t)(got - put), op + (off_t)total + put);
            if (w <= 0) {
                if (!total && !put)
                    return -1;
                got = put;
                break;
            }
            put += w;
        }
        total += (size_t)put;
        if (put < got || (size_t)got < want)
            break;
    }
    if (in_off)
        *in_off += (off_t)total;
    else
        lseek(in, ip + (off_t)total, SEEK_SET);
    if (out_off)
        *out_off += (off_t)total;
    else
        lseek(out, op + (off_t)total, SEEK_SET);
    return (ssize_t)total;
}

/* splice between an image file and a pipe, through a buffer: what the kernel's splice does
 * for a filesystem without splice_read/splice_write of its own (its default copies too) */
static int is_pipe(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

static ssize_t splice_image(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    int in_pipe = !is_virt(in) && is_pipe(in), out_pipe = !is_virt(out) && is_pipe(out);
    if ((is_virt(in) && vacc[in] == O_WRONLY) || (is_virt(out) && vacc[out] == O_RDONLY))
        return failed(EBADF);
    if (flags & ~(unsigned)(SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT))
        return failed(EINVAL);
    if (!in_pipe && !out_pipe)
        return failed(EINVAL);          /* an image file and a non-pipe: one end must be a pipe */
    if ((in_pipe && in_off) || (out_pipe && out_off))
        return failed(ESPIPE);
    if (!len)
        return 0;
    int nonblock = flags & SPLICE_F_NONBLOCK;
    char buf[65536] __attribute__((aligned(4096)));     /* O_DIRECT files: see copy_range_image */
    size_t n = len < sizeof buf ? len : sizeof buf;
    if (in_pipe) {                      /* pipe -> image file */
        if (out_off && *out_off < 0)
            return failed(EINVAL);
        if (!out_off && (k_fcntl(out, F_GETFL, 0) & O_APPEND))
            return failed(EINVAL);
        struct pollfd p = {.fd = in, .events = POLLIN};
        if (nonblock && poll(&p, 1, 0) == 0)
            return failed(EAGAIN);
        /* past the program's file-size limit nothing leaves the pipe; across it, what fits,
         * and the signal when the pipe held more, as the kernel's next write earns it */
        off_t at = out_off ? *out_off : k_lseek(out, 0, SEEK_CUR);
        long long room = at < 0 ? (long long)n : fsize_room(at, (long long)n, NULL);
        if (room < 0)
            return -1;
        int queued = 0;
        if (room < (long long)n && (poll(&p, 1, -1) < 0 || ioctl(in, FIONREAD, &queued) < 0))
            return -1;
        if (room < (long long)n && queued > room)
            pyf_xfsz();
        n = (size_t)room;
        ssize_t got = read(in, buf, n);
        if (got <= 0)
            return got;
        ssize_t put = out_off ? pwrite(out, buf, (size_t)got, *out_off) : write(out, buf, (size_t)got);
        if (put > 0 && out_off)
            *out_off += put;
        return put;                     /* a short write loses the rest, as a full disk would */
    }
    /* image file -> pipe: no more than the pipe has room for, so the write never blocks */
    if (in_off && *in_off < 0)
        return failed(EINVAL);
    for (;;) {
        int size = k_fcntl(out, F_GETPIPE_SZ, 0), queued = 0;
        if (size < 0 || ioctl(out, FIONREAD, &queued) < 0)
            return -1;
        if (size > queued) {
            if ((size_t)(size - queued) < n)
                n = (size_t)(size - queued);
            break;
        }
        struct pollfd p = {.fd = out, .events = POLLOUT};
        if (nonblock || (k_fcntl(out, F_GETFL, 0) & O_NONBLOCK))
            return failed(EAGAIN);
        if (poll(&p, 1, -1) < 0)
            return -1;
    }
    ssize_t got = in_off ? pread(in, buf, n, *in_off) : read(in, buf, n);
    if (got <= 0)
        return got;
    ssize_t put = write(out, buf, (size_t)got);
    if (put < got) {                    /* what the pipe did not take stays unread */
        if (!in_off)
            lseek(in, (put < 0 ? 0 : put) - got, SEEK_CUR);
        if (put <= 0)
            return put;
    }
    if (in_off)
        *in_off += put;
    return put;
}

ssize_t splice(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    if (is_virt(in) || is_virt(out))
        return splice_image(in, in_off, out, out_off, len, flags);
    load_splice();
    return real_splice(in, in_off, out, out_off, len, flags);
}

ssize_t copy_file_range(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned int flags)
{
    if (is_virt(in) && is_virt(out))
        return copy_range_image(in, in_off, out, out_off, len, flags);
    if (is_virt(in) || is_virt(out))
        return failed(flags ? EINVAL : EXDEV);  /* another filesystem: cp falls back */
    load_copy_file_range();
    return real_copy_file_range(in, in_off, out, out_off, len, flags);
}
