/* Calls by path on the image: unlink, rmdir, mkdir, rename, link, the working directory,
 * access, attributes (times, mode, owner) and statfs. */
#include "interpose.h"
#include <limits.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <time.h>
#include <utime.h>

REAL(int, unlink, const char *)
REAL(int, unlinkat, int, const char *, int)
REAL(int, rmdir, const char *)
REAL(int, mkdir, const char *, mode_t)
REAL(int, mkdirat, int, const char *, mode_t)
REAL(int, rename, const char *, const char *)
REAL(int, renameat, int, const char *, int, const char *)
REAL(int, renameat2, int, const char *, int, const char *, unsigned int)
REAL(int, link, const char *, const char *)
REAL(int, linkat, int, const char *, int, const char *, int)
REAL(int, symlink, const char *, const char *)
REAL(int, symlinkat, const char *, int, const char *)
REAL(ssize_t, readlink, const char *, char *, size_t)
REAL(ssize_t, readlinkat, int, const char *, char *, size_t)
REAL(int, chdir, const char *)
REAL(int, fchdir, int)
REAL(char *, getcwd, char *, size_t)
REAL(int, access, const char *, int)
REAL(int, euidaccess, const char *, int)
REAL(int, eaccess, const char *, int)
REAL(int, faccessat, int, const char *, int, int)
REAL(int, utimensat, int, const char *, const struct timespec *, int)
REAL(int, futimens, int, const struct timespec *)
REAL(int, utimes, const char *, const struct timeval *)
REAL(int, utime, const char *, const struct utimbuf *)
REAL(int, chmod, const char *, mode_t)
REAL(int, fchmod, int, mode_t)
REAL(int, fchmodat, int, const char *, mode_t, int)
REAL(int, chown, const char *, uid_t, gid_t)
REAL(int, lchown, const char *, uid_t, gid_t)
REAL(int, fchown, int, uid_t, gid_t)
REAL(int, fchownat, int, const char *, uid_t, gid_t, int)
REAL(int, statfs, const char *, struct statfs *)
REAL(int, fstatfs, int, struct statfs *)
REAL(int, statvfs, const char *, struct statvfs *)
REAL(int, fstatvfs, int, struct statvfs *)

static int failed(int e)
{
    errno = e;
    return -1;
}

/* image_path's answer copied into buf, or NULL: its own buffer serves the next call */
static const char *image_path_kept(int dirfd, const char *path, char *buf, size_t n)
{
    const char *ip = image_path(dirfd, path);
    if (!ip)
        return NULL;
    snprintf(buf, n, "%s", ip);
    return buf;
}

/* ---- names ------------------------------------------------------------------------------------ */
int unlink(const char *path)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)OR_HOST(PY(pyf_unlink(inner(ip), 0)), (load_unlink(), real_unlink(host)));
    load_unlink();
    return real_unlink(alias(path));
}

/* remove(3): glibc calls unlink, then rmdir on EISDIR, from inside itself */
REAL(int, remove, const char *)
int remove(const char *path)
{
    char own[4096];
    if (!image_path_kept(AT_FDCWD, path, own, sizeof own)) {
        load_remove();
        return real_remove(alias(path));
    }
    int r = unlink(own);
    return r < 0 && errno == EISDIR ? rmdir(own) : r;
}

int unlinkat(int dirfd, const char *path, int flags)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return (int)OR_HOST(PY(pyf_unlink(inner(ip), (flags & AT_REMOVEDIR) != 0)),
                            (load_unlinkat(), real_unlinkat(AT_FDCWD, host, flags)));
    load_unlinkat();
    return real_unlinkat(alias_dir(dirfd, path), alias(path), flags);
}

int rmdir(const char *path)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)OR_HOST(PY(pyf_unlink(inner(ip), 1)), (load_rmdir(), real_rmdir(host)));
    load_rmdir();
    return real_rmdir(alias(path));
}

int mkdir(const char *path, mode_t mode)
{
    const char *ip = HERE(path);
    if (ip)
        return (int)OR_HOST(PY(pyf_mkdir(inner(ip), (int)mode, (int)process_umask())),
                            (load_mkdir(), real_mkdir(host, mode)));
    load_mkdir();
    return real_mkdir(alias(path), mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return (int)OR_HOST(PY(pyf_mkdir(inner(ip), (int)mode, (int)process_umask())),
                            (load_mkdirat(), real_mkdirat(AT_FDCWD, host, mode)));
    load_mkdirat();
    return real_mkdirat(alias_dir(dirfd, path), alias(path), mode);
}

int renameat2(int olddir, const char *from, int newdir, const char *to, unsigned int flags)
{
    char a[8192];
    const char *ia = image_path_kept(olddir, from, a, sizeof a);
    const char *ib = image_path(newdir, to);
    if (ia && ib)
        return (int)PY(pyf_rename(inner(ia), inner(ib), flags));
    if (ia || ib)
        return failed(EXDEV);   /* across the prefix: mv copies */
    load_renameat2();
    return real_renameat2(alias_dir(olddir, from), alias(from), alias_dir(newdir, to), alias(to), flags);
}

int renameat(int olddir, const char *from, int newdir, const char *to)
{
    if (image_path(olddir, from) || image_path(newdir, to))
        return renameat2(olddir, from, newdir, to, 0);
    load_renameat();
    return real_renameat(alias_dir(olddir, from), alias(from), alias_dir(newdir, to), alias(to));
}

int rename(const char *from, const char *to)
{
    if (HERE(from) || HERE(to))
        return renameat2(AT_FDCWD, from, AT_FDCWD, to, 0);
    load_rename();
    return real_rename(alias(from), alias(to));
}

/* mknod: FIFOs, sockets and device nodes are made by the volume, the umask applied as the
 * kernel applies it (unless a default ACL takes its place); a regular file as open makes it */
REAL(int, mknodat, int, const char *, mode_t, dev_t)

int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return (int)OR_HOST(PY(pyf_mknod(inner(ip), (int)mode, (long long)dev, (int)process_umask())),
                            (load_mknodat(), real_mknodat(AT_FDCWD, host, mode, dev)));
    load_mknodat();
    return real_mknodat(alias_dir(dirfd, path), alias(path), mode, dev);
}

int mknod(const char *path, mode_t mode, dev_t dev) { return mknodat(AT_FDCWD, path, mode, dev); }
int mkfifoat(int dirfd, const char *path, mode_t mode) { return mknodat(dirfd, path, S_IFIFO | (mode & 07777), 0); }
int mkfifo(const char *path, mode_t mode) { return mkfifoat(AT_FDCWD, path, mode); }

/* Hard links within the image; across the prefix EXDEV, as between two mounts. With
 * AT_EMPTY_PATH and an empty name the old file is the descriptor's. */
int linkat(int olddir, const char *from, int newdir, const char *to, int flags)
{
    char a[8192];
    int by_fd = (flags & AT_EMPTY_PATH) && !from[0] && is_virt(olddir);
    const char *ia = by_fd ? NULL : image_path_kept(olddir, from, a, sizeof a);
    const char *ib = image_path(newdir, to);
    if ((by_fd || ia) && ib)
        return (int)PY(pyf_link(by_fd ? "" : inner(ia), inner(ib), flags, by_fd ? olddir : -1));
    if (by_fd || ia || ib)
        return failed(EXDEV);
    load_linkat();
    return real_linkat(alias_dir(olddir, from), alias(from), alias_dir(newdir, to), alias(to), flags);
}

int link(const char *from, const char *to)
{
    if (HERE(from) || HERE(to))
        return linkat(AT_FDCWD, from, AT_FDCWD, to, 0);
    load_link();
    return real_link(alias(from), alias(to));
}

/* A link on the image keeps its target as given: a relative one is looked up from the
 * link's directory, an absolute one under the mount prefix names a file of the image (one
 * elsewhere on the host names nothing there, see fs/filesystem.py) */
int symlinkat(const char *target, int dirfd, const char *path)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return (int)OR_HOST(PY(pyf_symlink(target, inner(ip))), (load_symlinkat(), real_symlinkat(target, AT_FDCWD, host)));
    load_symlinkat();
    return real_symlinkat(target, alias_dir(dirfd, path), alias(path));
}

int symlink(const char *target, const char *path)
{
    if (HERE(path))
        return symlinkat(target, AT_FDCWD, path);
    load_symlink();
    return real_symlink(target, alias(path));
}

/* The descriptor an absolute /proc/self/fd/N, /proc/thread-self/fd/N, /proc/PID/fd/N (this
 * process) or /dev/fd/N names, when it is an image file; else -1. */
static int proc_fd(const char *path)
{
    const char *n = NULL;
    if (!strncmp(path, "/proc/self/fd/", 14))
        n = path + 14;
    else if (!strncmp(path, "/proc/thread-self/fd/", 21))
        n = path + 21;
    else if (!strncmp(path, "/dev/fd/", 8))
        n = path + 8;
    else if (!strncmp(path, "/proc/", 6) && path[6] >= '0' && path[6] <= '9') {
        char own[64];                   /* a pid: this process's only (getpid is a system call) */
        int k = snprintf(own, sizeof own, "/proc/%d/fd/", (int)getpid());
        if (!strncmp(path, own, (size_t)k))
            n = path + k;
    }
    if (!n || *n < '0' || *n > '9')
        return -1;
    char *end;
    long fd = strtol(n, &end, 10);
    return *end || fd >= MAX_FDS || !is_virt((int)fd) ? -1 : (int)fd;
}

/* The link of an image descriptor in /proc: its path now, " (deleted)" after it once it has
 * no name, as d_path writes it (and not its shadow's name). */
static ssize_t fd_link(int fd, char *buf, size_t size)
{
    char inside[4096], full[8192];
    if (PY(pyf_path(fd, inside, sizeof inside)) < 0) {
        if (errno != ENOENT)
            return -1;
        snprintf(inside, sizeof inside, "%s (deleted)", virt_path(fd) ? inner(virt_path(fd)) : "/");
    }
    if (!outer(inside, full, sizeof full))
        return -1;
    size_t len = strlen(full) < size ? strlen(full) : size;
    memcpy(buf, full, len);
    return (ssize_t)len;
}

ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return (ssize_t)OR_HOST(PY(pyf_readlink(inner(ip), buf, (long long)size)),
                                (load_readlinkat(), real_readlinkat(AT_FDCWD, host, buf, size)));
    int fd = path[0] == '/' ? proc_fd(path) : -1;
    if (fd >= 0)
        return fd_link(fd, buf, size);
    load_readlinkat();
    return real_readlinkat(alias_dir(dirfd, path), alias(path), buf, size);
}

ssize_t readlink(const char *path, char *buf, size_t size)
{
    if (HERE(path) || (path[0] == '/' && proc_fd(path) >= 0))
        return readlinkat(AT_FDCWD, path, buf, size);
    load_readlink();
    return real_readlink(alias(path), buf, size);
}

/* ---- the working directory, while it is a directory of the image ------------------------------- */

/* While the working directory is on the image, the process's real one is a directory that
 * no longer exists: a call that still bypasses the shim with a relative name (an inline
 * system call, a static helper) gets ENOENT instead of creating a host file. */
static void leave_real_cwd(void)
{
    char tmp[] = "/tmp/pyfalloc-cwd-XXXXXX";
    load_chdir();
    load_rmdir();
    if (mkdtemp(tmp) && real_chdir(tmp) == 0)
        real_rmdir(tmp);
}

static int enter(const char *ip, int fd)
{
    struct stat st;
    if (image_stat(fd, fd >= 0 ? NULL : ip, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return failed(ENOTDIR);
    char inside[PATH_MAX], real[PATH_MAX + 4096];
    if (fd < 0) {                   /* the directory's own path, not the links that led there */
        if (PY(pyf_realpath(inner(ip), inside, sizeof inside)) < 0) {
            const char *host = left_image();
            if (!host)
                return -1;
            load_chdir();           /* a link led out of the image: a host directory */
            if (real_chdir(host) < 0)
                return -1;
            vcwd[0] = 0;
            note_host_cwd();
            publish_cwd();
            return 0;
        }
        if (!(ip = outer(inside, real, sizeof real)))
            return -1;
    }
    if (strlen(ip) >= sizeof vcwd)
        return failed(ENAMETOOLONG);
    if (!vcwd[0])
        leave_real_cwd();
    memmove(vcwd, ip, strlen(ip) + 1);
    drop_trailing_slash(vcwd);
    publish_cwd();
    return 0;
}

int chdir(const char *path)
{
    const char *ip = HERE(path);
    if (ip)
        return enter(ip, -1);
    load_chdir();
    int r = real_chdir(alias(path));
    if (r == 0) {
        vcwd[0] = 0;
        note_host_cwd();
        publish_cwd();
    }
    return r;
}

int fchdir(int fd)
{
    if (is_virt(fd) && virt_path(fd))
        return enter(vpath[fd], fd);
    load_fchdir();
    int r = real_fchdir(fd);
    if (r == 0) {
        vcwd[0] = 0;
        note_host_cwd();
        publish_cwd();
    }
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
        size = size > n ? size : n;
        if (!(buf = malloc(size))) {
            errno = ENOMEM;
            return NULL;
        }
    }
    if (size < n) {
        errno = ERANGE;
        return NULL;
    }
    memcpy(buf, vcwd, n);
    return buf;
}

/* ---- access ------------------------------------------------------------------------------------ */
int faccessat(int dirfd, const char *path, int mode, int flags)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return (int)OR_HOST(PY(pyf_access(inner(ip), mode, flags)),
                            (load_faccessat(), real_faccessat(AT_FDCWD, host, mode, flags)));
    load_faccessat();
    return real_faccessat(alias_dir(dirfd, path), alias(path), mode, flags);
}

int access(const char *path, int mode)
{
    if (HERE(path))
        return faccessat(AT_FDCWD, path, mode, 0);
    load_access();
    return real_access(alias(path), mode);
}

int euidaccess(const char *path, int mode)
{
    if (HERE(path))
        return faccessat(AT_FDCWD, path, mode, AT_EACCESS);
    load_euidaccess();
    return real_euidaccess(alias(path), mode);
}

int eaccess(const char *path, int mode)
{
    if (HERE(path))
        return faccessat(AT_FDCWD, path, mode, AT_EACCESS);
    load_eaccess();
    return real_eaccess(alias(path), mode);
}

/* ---- attributes -------------------------------------------------------------------------------- */
/* pyf_setattr's slots: mode, uid, gid, atime and mtime in ns; -1 leaves one alone, -2 is
 * the current time (UTIME_NOW, which any writer of the file may set) */
enum { A_MODE, A_UID, A_GID, A_ATIME, A_MTIME, A_N };

static long long stamp(const struct timespec *t, int i)
{
    if (!t || t[i].tv_nsec == UTIME_NOW)
        return -2;
    if (t[i].tv_nsec == UTIME_OMIT)
        return -1;
    return t[i].tv_sec * 1000000000LL + t[i].tv_nsec;
}

static int set_times(int fd, const char *ip, const struct timespec *t)
{
    if (t && ((t[0].tv_nsec != UTIME_NOW && t[0].tv_nsec != UTIME_OMIT && (t[0].tv_nsec < 0 || t[0].tv_nsec > 999999999))
              || (t[1].tv_nsec != UTIME_NOW && t[1].tv_nsec != UTIME_OMIT && (t[1].tv_nsec < 0 || t[1].tv_nsec > 999999999))))
        return failed(EINVAL);
    long long a[A_N] = {-1, -1, -1, stamp(t, 0), stamp(t, 1)};
    return (int)OR_HOST(PY(pyf_setattr(fd, ip ? inner(ip) : NULL, a)),
                        (load_utimensat(), real_utimensat(AT_FDCWD, host, t, PATH_AT_FLAGS(fd))));
}

int utimensat(int dirfd, const char *path_arg, const struct timespec t[2], int flags)
{
    /* the kernel takes a NULL path (futimens); glibc's header says nonnull, so the
     * compiler must not drop the test */
    const char *path = path_arg;
    __asm__("" : "+r"(path));
    if (!path && is_virt(dirfd))
        return set_times(dirfd, NULL, t);          /* futimens */
    const char *ip = path ? image_path(dirfd, path) : NULL;
    if (!ip && path && !*path && (flags & AT_EMPTY_PATH) && is_virt(dirfd))
        return set_times(dirfd, NULL, t);
    if (ip)
        return set_times(PATH_FD(flags & AT_SYMLINK_NOFOLLOW), ip, t);
    load_utimensat();
    return real_utimensat(alias_dir(dirfd, path), alias(path), t, flags);
}

int futimens(int fd, const struct timespec t[2])
{
    if (is_virt(fd))
        return set_times(fd, NULL, t);
    load_futimens();
    return real_futimens(fd, t);
}

int utimes(const char *path, const struct timeval tv[2])
{
    const char *ip = HERE(path);
    if (ip) {
        struct timespec t[2];
        for (int i = 0; tv && i < 2; i++) {
            t[i].tv_sec = tv[i].tv_sec;
            t[i].tv_nsec = tv[i].tv_usec * 1000;
        }
        return set_times(-1, ip, tv ? t : NULL);
    }
    load_utimes();
    return real_utimes(alias(path), tv);
}

int utime(const char *path, const struct utimbuf *u)
{
    const char *ip = HERE(path);
    if (ip) {
        struct timespec t[2] = {{u ? u->actime : 0, 0}, {u ? u->modtime : 0, 0}};
        return set_times(-1, ip, u ? t : NULL);
    }
    load_utime();
    return real_utime(alias(path), u);
}

/* lutimes, futimes and futimesat: glibc calls utimensat from inside itself, so each is made
 * here with the interposed calls (lutimes with AT_SYMLINK_NOFOLLOW's Python call) */
REAL(int, lutimes, const char *, const struct timeval *)
REAL(int, futimesat, int, const char *, const struct timeval *)

static void to_timespecs(const struct timeval tv[2], struct timespec t[2])
{
    for (int i = 0; i < 2; i++) {
        t[i].tv_sec = tv[i].tv_sec;
        t[i].tv_nsec = tv[i].tv_usec * 1000;
    }
}

int lutimes(const char *path, const struct timeval tv[2])
{
    const char *ip = HERE(path);
    if (ip) {
        struct timespec t[2];
        if (tv)
            to_timespecs(tv, t);
        return set_times(BY_PATH_ITSELF, ip, tv ? t : NULL);
    }
    load_lutimes();
    return real_lutimes(alias(path), tv);
}

REAL(int, futimes, int, const struct timeval *)

int futimes(int fd, const struct timeval tv[2])
{
    struct timespec t[2];
    if (tv)
        to_timespecs(tv, t);
    if (is_virt(fd))
        return futimens(fd, tv ? t : NULL);
    load_futimes();
    return real_futimes(fd, tv);
}

int futimesat(int dirfd, const char *path, const struct timeval tv[2])
{
    struct timespec t[2];
    if (tv)
        to_timespecs(tv, t);
    if (!path && is_virt(dirfd))
        return futimens(dirfd, tv ? t : NULL);
    if (path && image_path(dirfd, path))
        return utimensat(dirfd, path, tv ? t : NULL, 0);
    load_futimesat();
    return path ? real_futimesat(alias_dir(dirfd, path), alias(path), tv) : real_futimesat(dirfd, path, tv);
}

/* by descriptor, or by path ip (fd BY_PATH_FOLLOW or BY_PATH_ITSELF) */
static int set_owner_mode(int fd, const char *ip, long long mode, long long uid, long long gid)
{
    long long a[A_N] = {mode, uid, gid, -1, -1};
    int nofollow = PATH_AT_FLAGS(fd);
    return (int)OR_HOST(PY(pyf_setattr(fd, ip ? inner(ip) : NULL, a)),
                        mode != -1 ? (load_fchmodat(), real_fchmodat(AT_FDCWD, host, (mode_t)mode, nofollow))
                                   : (load_fchownat(), real_fchownat(AT_FDCWD, host, (uid_t)uid, (gid_t)gid, nofollow)));
}

/* (uid_t)-1 and (gid_t)-1 leave that owner alone, as chown(2) */
static long long id_arg(unsigned int id) { return id == (unsigned int)-1 ? -1 : (long long)id; }

int fchmodat(int dirfd, const char *path, mode_t mode, int flags)
{
    const char *ip = image_path(dirfd, path);
    if (ip)
        return set_owner_mode(PATH_FD(flags & AT_SYMLINK_NOFOLLOW), ip, mode & 07777, -1, -1);
    load_fchmodat();
    return real_fchmodat(alias_dir(dirfd, path), alias(path), mode, flags);
}

int chmod(const char *path, mode_t mode)
{
    const char *ip = HERE(path);
    if (ip)
        return set_owner_mode(-1, ip, mode & 07777, -1, -1);
    load_chmod();
    return real_chmod(alias(path), mode);
}

int fchmod(int fd, mode_t mode)
{
    if (is_virt(fd))
        return set_owner_mode(fd, NULL, mode & 07777, -1, -1);
    load_fchmod();
    return real_fchmod(fd, mode);
}

int fchownat(int dirfd, const char *path, uid_t uid, gid_t gid, int flags)
{
    if (!*path && (flags & AT_EMPTY_PATH) && is_virt(dirfd))
        return set_owner_mode(dirfd, NULL, -1, id_arg(uid), id_arg(gid));
    const char *ip = image_path(dirfd, path);
    if (ip)
        return set_owner_mode(PATH_FD(flags & AT_SYMLINK_NOFOLLOW), ip, -1, id_arg(uid), id_arg(gid));
    load_fchownat();
    return real_fchownat(alias_dir(dirfd, path), alias(path), uid, gid, flags);
}

int chown(const char *path, uid_t uid, gid_t gid)
{
    const char *ip = HERE(path);
    if (ip)
        return set_owner_mode(-1, ip, -1, id_arg(uid), id_arg(gid));
    load_chown();
    return real_chown(alias(path), uid, gid);
}

int lchown(const char *path, uid_t uid, gid_t gid)
{
    const char *ip = HERE(path);
    if (ip)
        return set_owner_mode(BY_PATH_ITSELF, ip, -1, id_arg(uid), id_arg(gid));
    load_lchown();
    return real_lchown(alias(path), uid, gid);
}

int fchown(int fd, uid_t uid, gid_t gid)
{
    if (is_virt(fd))
        return set_owner_mode(fd, NULL, -1, id_arg(uid), id_arg(gid));
    load_fchown();
    return real_fchown(fd, uid, gid);
}

/* ---- statfs ------------------------------------------------------------------------------------ */
#define PYFALLOC_MAGIC 0x50594641         /* "PYFA" */
#define ST_VALID 0x20                     /* f_flags holds the mount flags */

static int image_statfs(struct statfs *sf)
{
    long long v[8];
    if (PY(pyf_statfs(v)) < 0)
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
    sf->f_flags = ST_VALID | v[7];
    return 0;
}

int statfs(const char *path, struct statfs *sf)
{
    if (HERE(path))
        return image_statfs(sf);
    load_statfs();
    return real_statfs(alias(path), sf);
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

/* df and most tools ask statvfs, which glibc answers from its internal statfs */
static int image_statvfs(struct statvfs *sv)
{
    struct statfs sf;
    if (image_statfs(&sf) < 0)
        return -1;
    memset(sv, 0, sizeof *sv);
    sv->f_bsize = (unsigned long)sf.f_bsize;
    sv->f_frsize = (unsigned long)sf.f_frsize;
    sv->f_blocks = sf.f_blocks;
    sv->f_bfree = sf.f_bfree;
    sv->f_bavail = sf.f_bavail;
    sv->f_files = sf.f_files;
    sv->f_ffree = sf.f_ffree;
    sv->f_favail = sf.f_ffree;
    sv->f_namemax = (unsigned long)sf.f_namelen;
    sv->f_flag = (unsigned long)(sf.f_flags & ~ST_VALID);
    return 0;
}

int statvfs(const char *path, struct statvfs *sv)
{
    if (HERE(path))
        return image_statvfs(sv);
    load_statvfs();
    return real_statvfs(alias(path), sv);
}

int fstatvfs(int fd, struct statvfs *sv)
{
    if (is_virt(fd))
        return image_statvfs(sv);
    load_fstatvfs();
    return real_fstatvfs(fd, sv);
}

int statvfs64(const char *path, struct statvfs64 *sv) { return statvfs(path, (struct statvfs *)sv); }
int fstatvfs64(int fd, struct statvfs64 *sv) { return fstatvfs(fd, (struct statvfs *)sv); }
