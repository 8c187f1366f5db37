/* libc's syscall(): a program that calls the kernel through it by number reaches the image
 * as it would through the named wrappers. Each file system call number is sent to the
 * interposed function of the same meaning (which serves image files and passes host ones on);
 * the others go to the kernel. Raw calls return -1 and set errno, as syscall() does. */
#define PYFALLOC_NO_INLINE
#include "interpose.h"
#include "fallocate2.h"
#include <dirent.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sendfile.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <sys/time.h>
#include <utime.h>

REAL(long, syscall, long, ...)

/* struct open_how of openat2 (VER0, 24 bytes) */
struct open_how_v0 {
    uint64_t flags, mode, resolve;
};

/* Whether a symbolic link is among the components of image path ip (a last one that may be
 * opened itself aside): RESOLVE_NO_SYMLINKS's ELOOP. Each prefix is lstat'ed (openat2 with
 * that flag is rare enough for the cost). */
static int through_a_link(const char *ip, int link_itself_ok)
{
    char prefix[8192];
    size_t n = strlen(ip), start = strlen(mount_prefix()) + 1;
    if (n >= sizeof prefix)
        return 0;
    for (size_t i = start; i <= n; i++) {
        if (ip[i] != '/' && ip[i] != 0)
            continue;
        memcpy(prefix, ip, i);
        prefix[i] = 0;
        struct stat st;
        if (i > start && image_lstat(prefix, &st) == 0 && S_ISLNK(st.st_mode) && !(i == n && link_itself_ok))
            return 1;
    }
    return 0;
}

/* openat2 on an image path: the kernel's checks on the struct, then openat. The image has no
 * mounts or magic links, so RESOLVE_NO_XDEV and RESOLVE_NO_MAGICLINKS hold by construction;
 * RESOLVE_NO_SYMLINKS refuses a path through a link (ELOOP). RESOLVE_BENEATH and
 * RESOLVE_IN_ROOT are not held against a link or ".." that leaves the descriptor's tree. */
static long image_openat2(int dirfd, const char *path, const struct open_how_v0 *how, size_t size)
{
    if (size < sizeof *how)
        return failed_errno(EINVAL);
    if (size > 4096)
        return failed_errno(E2BIG);
    for (size_t i = sizeof *how; i < size; i++)
        if (((const char *)how)[i])
            return failed_errno(E2BIG);
    if (how->flags >> 32 || how->resolve & ~(unsigned long long)(RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS
            | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_IN_ROOT | RESOLVE_CACHED))
        return failed_errno(EINVAL);
    if (how->mode && !(how->flags & O_CREAT) && (how->flags & O_TMPFILE) != O_TMPFILE)
        return failed_errno(EINVAL);
    if (how->mode & ~07777ULL)
        return failed_errno(EINVAL);
    if (how->resolve & RESOLVE_NO_SYMLINKS) {
        char ip[8192];
        const char *p = image_path(dirfd, path);
        snprintf(ip, sizeof ip, "%s", p ? p : "");
        /* O_PATH with O_NOFOLLOW: the trailing link itself may be opened */
        if (p && through_a_link(ip, (how->flags & (O_PATH | O_NOFOLLOW)) == (O_PATH | O_NOFOLLOW)))
            return failed_errno(ELOOP);
    }
    return openat(dirfd, path, (int)how->flags, (mode_t)how->mode);
}

long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    const char *p0 = (const char *)a[0], *p1 = (const char *)a[1];
    int fd0 = (int)a[0];
    switch (nr) {
    /* the fallocate family, and the RFC's numbers */
    case SYS_fallocate: return fallocate(fd0, (int)a[1], (off_t)a[2], (off_t)a[3]);
    case SYS_fallocate2: return fallocate2(fd0, (int)a[1], (off_t)a[2], (off_t)a[3], (uint64_t)a[4]);
    case SYS_fallocate3: return fallocate3(fd0, (const struct fallocate_how *)a[1], (size_t)a[2]);
    /* descriptors and data */
    case SYS_umask: return umask((mode_t)a[0]);
    case SYS_read: return read(fd0, (void *)a[1], (size_t)a[2]);
    case SYS_write: return write(fd0, (const void *)a[1], (size_t)a[2]);
    case SYS_pread64: return pread(fd0, (void *)a[1], (size_t)a[2], (off_t)a[3]);
    case SYS_pwrite64: return pwrite(fd0, (const void *)a[1], (size_t)a[2], (off_t)a[3]);
    case SYS_readv: return readv(fd0, (const struct iovec *)a[1], (int)a[2]);
    case SYS_writev: return writev(fd0, (const struct iovec *)a[1], (int)a[2]);
    case SYS_preadv: return preadv(fd0, (const struct iovec *)a[1], (int)a[2], (off_t)a[3]);
    case SYS_pwritev: return pwritev(fd0, (const struct iovec *)a[1], (int)a[2], (off_t)a[3]);
    case SYS_preadv2: return preadv2(fd0, (const struct iovec *)a[1], (int)a[2], (off_t)a[3], (int)a[5]);
    case SYS_pwritev2: return pwritev2(fd0, (const struct iovec *)a[1], (int)a[2], (off_t)a[3], (int)a[5]);
    case SYS_lseek: return lseek(fd0, (off_t)a[1], (int)a[2]);
    case SYS_getdents64: return getdents64(fd0, (void *)a[1], (size_t)a[2]);
    case SYS_getdents: return image_getdents(fd0, (void *)a[1], (size_t)a[2]);
    case SYS_io_submit: return image_io_submit((unsigned long)a[0], a[1], (void *)a[2]);
    case SYS_io_uring_setup: return uring_setup((unsigned)a[0], (void *)a[1]);
    case SYS_io_uring_enter: uring_entering(fd0, (unsigned)a[1], (unsigned)a[3]); break;
    case SYS_close: return close(fd0);
    case SYS_close_range: return close_range((unsigned int)a[0], (unsigned int)a[1], (int)a[2]);
    case SYS_dup: return dup(fd0);
    case SYS_dup2: return dup2(fd0, (int)a[1]);
    case SYS_dup3: return dup3(fd0, (int)a[1], (int)a[2]);
    case SYS_fcntl: return fcntl(fd0, (int)a[1], a[2]);
    case SYS_ioctl: return ioctl(fd0, (unsigned long)a[1], a[2]);
    case SYS_fsync: return fsync(fd0);
    case SYS_fdatasync: return fdatasync(fd0);
    case SYS_syncfs: return syncfs(fd0);
    case SYS_ftruncate: return ftruncate(fd0, (off_t)a[1]);
    case SYS_fstat: return fstat(fd0, (struct stat *)a[1]);
    case SYS_fstatfs: return fstatfs(fd0, (struct statfs *)a[1]);
    case SYS_fchdir: return fchdir(fd0);
    case SYS_fchmod: return fchmod(fd0, (mode_t)a[1]);
    case SYS_fchown: return fchown(fd0, (uid_t)a[1], (gid_t)a[2]);
    case SYS_fadvise64: return (errno = posix_fadvise(fd0, (off_t)a[1], (off_t)a[2], (int)a[3])) ? -1 : 0;
    case SYS_readahead: return readahead(fd0, (off_t)a[1], (size_t)a[2]);
    case SYS_sendfile: return sendfile(fd0, (int)a[1], (off_t *)a[2], (size_t)a[3]);
    case SYS_splice:
        return splice(fd0, (off_t *)a[1], (int)a[2], (off_t *)a[3], (size_t)a[4], (unsigned int)a[5]);
    case SYS_copy_file_range:
        return copy_file_range(fd0, (off_t *)a[1], (int)a[2], (off_t *)a[3], (size_t)a[4], (unsigned int)a[5]);
    /* names */
    case SYS_open: return open(p0, (int)a[1], (mode_t)a[2]);
    case SYS_creat: return creat(p0, (mode_t)a[1]);
    case SYS_openat: return openat(fd0, p1, (int)a[2], (mode_t)a[3]);
    case SYS_openat2:
        if (image_path(fd0, p1))
            return image_openat2(fd0, p1, (const struct open_how_v0 *)a[2], (size_t)a[3]);
        break;
    case SYS_stat: return stat(p0, (struct stat *)a[1]);
    case SYS_lstat: return lstat(p0, (struct stat *)a[1]);
    case SYS_newfstatat: return fstatat(fd0, p1, (struct stat *)a[2], (int)a[3]);
    case SYS_statx: return statx(fd0, p1, (int)a[2], (unsigned int)a[3], (struct statx *)a[4]);
    case SYS_statfs: return statfs(p0, (struct statfs *)a[1]);
    case SYS_truncate: return truncate(p0, (off_t)a[1]);
    case SYS_access: return access(p0, (int)a[1]);
    case SYS_faccessat: return faccessat(fd0, p1, (int)a[2], 0);
    case SYS_faccessat2: return faccessat(fd0, p1, (int)a[2], (int)a[3]);
    case SYS_unlink: return unlink(p0);
    case SYS_unlinkat: return unlinkat(fd0, p1, (int)a[2]);
    case SYS_rmdir: return rmdir(p0);
    case SYS_mkdir: return mkdir(p0, (mode_t)a[1]);
    case SYS_mkdirat: return mkdirat(fd0, p1, (mode_t)a[2]);
    case SYS_rename: return rename(p0, p1);
    case SYS_renameat: return renameat(fd0, p1, (int)a[2], (const char *)a[3]);
    case SYS_renameat2: return renameat2(fd0, p1, (int)a[2], (const char *)a[3], (unsigned int)a[4]);
    case SYS_link: return link(p0, p1);
    case SYS_linkat: return linkat(fd0, p1, (int)a[2], (const char *)a[3], (int)a[4]);
    case SYS_symlink: return symlink(p0, p1);
    case SYS_symlinkat: return symlinkat(p0, (int)a[1], (const char *)a[2]);
    case SYS_readlink: return readlink(p0, (char *)a[1], (size_t)a[2]);
    case SYS_readlinkat: return readlinkat(fd0, p1, (char *)a[2], (size_t)a[3]);
    case SYS_getxattr: return getxattr(p0, p1, (void *)a[2], (size_t)a[3]);
    case SYS_lgetxattr: return lgetxattr(p0, p1, (void *)a[2], (size_t)a[3]);
    case SYS_fgetxattr: return fgetxattr(fd0, p1, (void *)a[2], (size_t)a[3]);
    case SYS_setxattr: return setxattr(p0, p1, (const void *)a[2], (size_t)a[3], (int)a[4]);
    case SYS_lsetxattr: return lsetxattr(p0, p1, (const void *)a[2], (size_t)a[3], (int)a[4]);
    case SYS_fsetxattr: return fsetxattr(fd0, p1, (const void *)a[2], (size_t)a[3], (int)a[4]);
    case SYS_listxattr: return listxattr(p0, (char *)a[1], (size_t)a[2]);
    case SYS_llistxattr: return llistxattr(p0, (char *)a[1], (size_t)a[2]);
    case SYS_flistxattr: return flistxattr(fd0, (char *)a[1], (size_t)a[2]);
    case SYS_removexattr: return removexattr(p0, p1);
    case SYS_lremovexattr: return lremovexattr(p0, p1);
    case SYS_fremovexattr: return fremovexattr(fd0, p1);
    case SYS_chdir: return chdir(p0);
    case SYS_chmod: return chmod(p0, (mode_t)a[1]);
    case SYS_fchmodat: return fchmodat(fd0, p1, (mode_t)a[2], 0);
    case SYS_chown: return chown(p0, (uid_t)a[1], (gid_t)a[2]);
    case SYS_lchown: return lchown(p0, (uid_t)a[1], (gid_t)a[2]);
    case SYS_fchownat: return fchownat(fd0, p1, (uid_t)a[2], (gid_t)a[3], (int)a[4]);
    case SYS_utimensat: return utimensat(fd0, p1, (const struct timespec *)a[2], (int)a[3]);
    case SYS_utimes: return utimes(p0, (const struct timeval *)a[1]);
    case SYS_utime: return utime(p0, (const struct utimbuf *)a[1]);
    case SYS_getcwd: {                  /* the kernel's form: the length, NUL included */
        char *r = getcwd((char *)a[0], (size_t)a[1]);
        return r ? (long)strlen(r) + 1 : -1;
    }
    }
    load_syscall();
    long r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (r == 0 && (nr == SYS_setrlimit || (nr == SYS_prlimit64 && a[2])))
        fsize_changed();            /* the program's limits: fsize.c reads them again */
    return r;
}
