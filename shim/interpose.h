/* What the parts of the interposer share. Compiled apart from the cffi module: Python.h
 * sets _FILE_OFFSET_BITS=64, which would quietly turn `fallocate` into `fallocate64`. */
#ifndef PYFALLOC_INTERPOSE_H
#define PYFALLOC_INTERPOSE_H
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "shim.h"
#include "shim_c.h"

#include <pthread.h>

#define MAX_FDS 65536
#define NO_HINT ((unsigned long long)-1)
#define HIDDEN __attribute__((visibility("hidden")))

/* In a forked child, a mutex of the shim that another thread of the parent held at the fork
 * (a thread the child does not have): made free again. 1 when it was held, and what it
 * guards may be half-changed. */
static inline int reclaim_after_fork(pthread_mutex_t *m)
{
    if (pthread_mutex_trylock(m) == 0) {
        pthread_mutex_unlock(m);
        return 0;
    }
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    *m = fresh;
    return 1;
}

/* A file's mutex M reclaimed in every forked child, and FORGET done there when it was held */
#define RECLAIMED_AT_FORK(m, forget)                                                        \
    static void child_reclaims_##m(void)                                                   \
    {                                                                                      \
        if (reclaim_after_fork(&m)) { forget; }                                            \
    }                                                                                      \
    __attribute__((constructor)) static void reclaim_at_fork_##m(void)                     \
    {                                                                                      \
        pthread_atfork(NULL, NULL, child_reclaims_##m);                                    \
    }

/* libc's own definition of NAME, found once, past this library */
#define REAL(ret, name, ...)                                                    \
    static ret (*real_##name)(__VA_ARGS__);                                     \
    static void load_##name(void) {                                             \
        if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name); \
    }

/* ---- fdtable.c: which descriptors are image files ------------------------------------------- */
HIDDEN extern unsigned char virt[MAX_FDS];   /* fd is the shadow of an image file */
HIDDEN extern char *vpath[MAX_FDS];          /* ... opened by this path (for *at calls, fchdir) */
HIDDEN extern unsigned char vacc[MAX_FDS];   /* ... with this access mode */
HIDDEN extern unsigned char vdirect[MAX_FDS]; /* ... opened or set O_DIRECT */
/* O_DIRECT's rule as ext4 applies it (iomap_dio_rw): the offset, the buffer's address and its
 * length are multiples of the device's 512-byte logical block, or EINVAL (nothing to move:
 * no check, as the kernel returns 0 first) */
#define DIO_MISALIGNED(fd, off, buf, n) \
    ((n) && (fd) >= 0 && (fd) < MAX_FDS && vdirect[fd] \
     && (((unsigned long long)(off) | (uintptr_t)(buf) | (unsigned long long)(n)) & 511))
HIDDEN extern char vcwd[4096];               /* the working directory while it is on the image */
HIDDEN extern __thread int in_py;            /* this thread is inside the embedded Python */

HIDDEN int is_virt(int fd);
HIDDEN int own_process(void);      /* not a vfork child running in this process's memory */
HIDDEN int fd_noted(int fd);       /* the shim keeps something about fd (fdtable.c) */
HIDDEN mode_t process_umask(void); /* umask.c */
HIDDEN long long done(long long r);
HIDDEN int python_ready(void);     /* the embedded Python runs, and this thread is not in it */
/* call the Python half: answers as libc does (-1 and errno on failure) */
#define PY(call) done(({ before_python(); fsize_lift(); in_py++; \
                            long long r_ = python_unusable() ? 0 : (call); in_py--; fsize_restore(); r_; }))
HIDDEN int python_unusable(void);   /* the errno why this process cannot start the Python half */
HIDDEN void before_python(void);
/* dirs.c: an image directory's listing ("ino type name\0" entries, malloc'd) and its entries */
HIDDEN char *image_listing(int fd, long long *len);
HIDDEN const char *listing_entry(const char *p, unsigned long long *ino, unsigned *type, const char **name);
/* getdents.c: the old getdents records, for syscall(SYS_getdents, ...) */
HIDDEN long image_getdents(int fd, void *buf, size_t n);
/* aio.c: io_submit with requests on image files (requests: struct iocb **) */
HIDDEN long image_io_submit(unsigned long ctx, long nr, void *requests);
/* uring.c: io_uring rings driven through syscall(), their requests on image files */
HIDDEN long uring_setup(unsigned entries, void *params);
HIDDEN void uring_mapped(int fd, off_t off, void *addr, size_t len);
HIDDEN void uring_unmapped(void *addr, size_t len);
HIDDEN void uring_closed(int fd);
HIDDEN void uring_entering(int fd, unsigned to_submit, unsigned flags);
/* fsize.c: the program's RLIMIT_FSIZE, lifted while the shim writes its own files */
HIDDEN void fsize_lift(void);
HIDDEN void fsize_restore(void);
HIDDEN long long fsize_room(long long off, long long n, int *limited);
HIDDEN void fsize_changed(void);        /* the program set its limits */
HIDDEN const char *image_path(int dirfd, const char *path);
HIDDEN void drop_trailing_slash(char *path);
HIDDEN void note_host_cwd(void);       /* after the host working directory changed */
HIDDEN void publish_cwd(void);         /* after vcwd changed: PYFALLOC_CWD for execs (exec.c) */
/* the shared log's position (fastread.c): 0 before Python opened the volume */
HIDDEN int log_position(unsigned long long pos[2]);
HIDDEN int log_no_reaping(void);
HIDDEN int open_log(int mode);      /* a description of the log of the shim's own */
/* answers by path kept while the shared log has not moved (answers.c), one table per call:
 * 1 and v filled, -1 and errno (a kept failure), 0 when Python must answer */
enum { ANSWERS_STAT, ANSWERS_OPEN };
HIDDEN int answer_lookup(int table, const char *ip, int key, const unsigned long long pos[2], long long *v, int n);
HIDDEN void answer_remember(int table, const char *ip, int key, const unsigned long long pos[2], const long long *v,
                            int n, int err);
HIDDEN const char *inner(const char *path);
HIDDEN const char *mount_prefix(void);
HIDDEN const char *outer(const char *inside, char *buf, size_t size);
/* the host path a link led the failed call (EXDEV) to, once; NULL when it stayed on the image */
HIDDEN const char *left_image(void);
/* the descriptor argument of pyf_stat, pyf_setattr and pyf_xattr for a call by path: the
 * last component followed, or a last symbolic link itself (lstat, AT_SYMLINK_NOFOLLOW) */
#define BY_PATH_FOLLOW (-1)
#define BY_PATH_ITSELF (-2)
#define PATH_FD(nofollow) ((nofollow) ? BY_PATH_ITSELF : BY_PATH_FOLLOW)
#define PATH_AT_FLAGS(fd) ((fd) == BY_PATH_ITSELF ? AT_SYMLINK_NOFOLLOW : 0)     /* and back */
/* an image call's result r, unless a symbolic link took its path out of the image: then
 * host_call, the host's own call on `host` (the path there), as the kernel would go on */
#define OR_HOST(r, host_call) ({ long long r_ = (r); const char *host = r_ < 0 ? left_image() : NULL; \
                                 host ? (long long)(host_call) : r_; })
/* the host path (and AT_FDCWD) to use for a path that left the image by ".." */
HIDDEN const char *alias(const char *path);
HIDDEN int alias_dir(int dirfd, const char *path);
#define HERE(path) image_path(AT_FDCWD, path)
HIDDEN int open_image(const char *path, int flags, mode_t mode);
HIDDEN int open_shadow(long long ino, int flags);
/* ---- openfast.c: opens answered in C while the log has not moved --------------------------- */
/* the descriptor, -1 and errno, or -2 when Python must answer */
HIDDEN int open_cached(const char *path, int flags);
HIDDEN int close_unclaimed(int fd);     /* 1: fd was opened in C and Python never saw it */
HIDDEN void holds_before_fork(void);
HIDDEN void holds_after_fork(int child);
HIDDEN void set_virt(int fd, const char *path, int acc);
HIDDEN const char *virt_path(int fd);
/* host descriptors of the directory holding the prefix (see fdtable.c) */
HIDDEN void opened_host(int fd, int dirfd, const char *path);
HIDDEN void copied_fd(int oldfd, int newfd);
HIDDEN void adopt_received(int fd);   /* a shadow received over a UNIX socket */
HIDDEN const char *env(const char *name);      /* getenv from environ itself */
HIDDEN const char *runtime_dir(void);   /* the volume's, in /dev/shm (NULL: no image) */
HIDDEN int failed_errno(int e);      /* errno = e, -1 */
HIDDEN void clear_virt(int fd);
HIDDEN int own_fd(int fd);
HIDDEN int keep_high(int fd);
HIDDEN void forget_own(int fd);

/* the kernel's calls, for the shim's own use */
HIDDEN int k_open(const char *path, int flags, mode_t mode);
HIDDEN int k_close(int fd);
HIDDEN off_t k_lseek(int fd, off_t off, int whence);
HIDDEN int k_fcntl(int fd, int cmd, long arg);
HIDDEN int k_dup3(int fd, int newfd, int flags);

/* ---- fastread.c: reads of written blocks without entering Python ---------------------------- */
HIDDEN ssize_t image_pread(int fd, void *buf, size_t n, off_t off);
/* an overwrite that changes no metadata, in C; -2 when Python must write */
HIDDEN ssize_t image_pwrite_fast(int fd, const void *buf, size_t n, off_t off);
HIDDEN void forget_extent(int fd);

/* ---- files.c ---------------------------------------------------------------------------------- */
HIDDEN int image_stat(int fd, const char *path, struct stat *st);
HIDDEN int image_lstat(const char *path, struct stat *st);   /* a last symbolic link itself */

/* ---- stdio.c: the standard streams follow descriptors 0-2 onto the image and back ------------ */
HIDDEN void std_before_change(int fd);
HIDDEN void std_rebind(int fd);

#endif
