/* io_uring on image files, for programs that drive the ring through syscall() (fio's
 * io_uring engine, stress-ng). The kernel reads the submission queue from memory it shares
 * with the program, so a request on an image descriptor would run on the shadow, an empty
 * file. The shim notes each ring that io_uring_setup makes and where the program maps its
 * submission queue; at io_uring_enter it walks the entries about to be submitted, carries
 * out those on image files (or image paths) here, through the interposed calls, and turns
 * each into a NOP that completes with the same result (IORING_NOP_INJECT_RESULT), so the
 * completion reaches the program as the kernel's would, with its user_data. An operation
 * the image cannot serve completes with EOPNOTSUPP instead of reaching the shadow.
 * Not reached: liburing, which enters the kernel by its own syscall instructions, and
 * rings polled by a kernel thread (IORING_SETUP_SQPOLL) or entered by a registered index. */
#include "interpose.h"
#include <linux/io_uring.h>
#include <linux/stat.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <sys/uio.h>

REAL(long, syscall, long, ...)

#define NOP_INJECT_RESULT 1u            /* IORING_NOP_INJECT_RESULT (Linux 6.10) */
#define SETUP_NO_MMAP (1u << 14)
#define SETUP_NO_SQARRAY (1u << 16)
#define OFF_SQES 0x10000000ULL
#define MAX_RINGS 16

static struct ring {
    int fd;
    unsigned flags, entries;
    struct io_sqring_offsets off;
    char *sq;                   /* the mapped SQ ring (IORING_OFF_SQ_RING) */
    size_t sq_len;
    char *sqes;                 /* the mapped entries (IORING_OFF_SQES) */
    size_t sqes_len;
} rings[MAX_RINGS];
static int nrings;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
RECLAIMED_AT_FORK(lock, )

static struct ring *find(int fd)
{
    for (int i = 0; i < nrings; i++)
        if (rings[i].fd == fd)
            return &rings[i];
    return NULL;
}

long uring_setup(unsigned entries, void *params)
{
    load_syscall();
    long fd = real_syscall(SYS_io_uring_setup, entries, params);
    if (fd < 0 || !params)
        return fd;
    const struct io_uring_params *p = params;
    pthread_mutex_lock(&lock);
    struct ring *r = find((int)fd);
    if (!r && nrings < MAX_RINGS)
        r = &rings[nrings++];
    if (r) {
        memset(r, 0, sizeof *r);
        r->fd = (int)fd;
        r->flags = p->flags;
        r->entries = p->sq_entries;
        r->off = p->sq_off;
    }
    pthread_mutex_unlock(&lock);
    return fd;
}

void uring_mapped(int fd, off_t off, void *addr, size_t len)
{
    if (!nrings)
        return;
    pthread_mutex_lock(&lock);
    struct ring *r = find(fd);
    if (r && (unsigned long long)off == IORING_OFF_SQ_RING) {
        r->sq = addr;
        r->sq_len = len;
    } else if (r && (unsigned long long)off == OFF_SQES) {
        r->sqes = addr;
        r->sqes_len = len;
    }
    pthread_mutex_unlock(&lock);
}

/* a mapping or a descriptor gone: a ring is never walked through memory it no longer has */
void uring_unmapped(void *addr, size_t len)
{
    if (!nrings)
        return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nrings; i++) {
        if (rings[i].sq && rings[i].sq < (char *)addr + len && (char *)addr < rings[i].sq + rings[i].sq_len)
            rings[i].sq = NULL;
        if (rings[i].sqes && rings[i].sqes < (char *)addr + len && (char *)addr < rings[i].sqes + rings[i].sqes_len)
            rings[i].sqes = NULL;
    }
    pthread_mutex_unlock(&lock);
}

void uring_closed(int fd)
{
    if (!nrings)
        return;
    pthread_mutex_lock(&lock);
    struct ring *r = find(fd);
    if (r)
        *r = rings[--nrings];
    pthread_mutex_unlock(&lock);
}

static int result(long r) { return r < 0 ? -errno : (int)r; }

static int on_image_path(int dirfd, uint64_t path)
{
    return path && image_path(dirfd, (const char *)(uintptr_t)path) != NULL;
}

/* An operation naming paths, carried out here when one is on the image: 1 and *res set, 0
 * when the kernel runs it as it is, -1 when it names no path. */
static int serve_path(const struct io_uring_sqe *e, int *res)
{
    int fd = e->fd, op = e->opcode;
    const char *path = (const char *)(uintptr_t)e->addr;
    if (op != IORING_OP_OPENAT && op != IORING_OP_STATX && op != IORING_OP_UNLINKAT && op != IORING_OP_MKDIRAT
        && op != IORING_OP_RENAMEAT)
        return -1;
    /* statx of the descriptor itself (an empty name with AT_EMPTY_PATH), as stress-ng asks */
    int of_fd = op == IORING_OP_STATX && (e->statx_flags & AT_EMPTY_PATH) && path && !*path && is_virt(fd);
    if ((op == IORING_OP_OPENAT && e->file_index)       /* a direct descriptor: the kernel's */
        || !(of_fd || on_image_path(fd, e->addr) || (op == IORING_OP_RENAMEAT && on_image_path((int)e->len, e->addr2))))
        return 0;
    long r = op == IORING_OP_OPENAT ? openat(fd, path, (int)e->open_flags, (mode_t)e->len)
           : op == IORING_OP_STATX ? statx(fd, path, (int)e->statx_flags, e->len, (struct statx *)(uintptr_t)e->addr2)
           : op == IORING_OP_UNLINKAT ? unlinkat(fd, path, (int)e->unlink_flags)
           : op == IORING_OP_MKDIRAT ? mkdirat(fd, path, (mode_t)e->len)
           : renameat2(fd, path, (int)e->len, (const char *)(uintptr_t)e->addr2, e->rename_flags);
    *res = result(r);
    return 1;
}

/* The entry's operation carried out here when it touches the image; 1 and *res set, else 0
 * (the kernel runs it as it is). */
static int serve(const struct io_uring_sqe *e, int *res)
{
    int by_path = serve_path(e, res);
    if (by_path >= 0)
        return by_path;
    int fd = e->fd;
    if (e->opcode == IORING_OP_SPLICE) {        /* either end may be the image file */
        int in = e->splice_fd_in;
        if (e->splice_flags & SPLICE_F_FD_IN_FIXED || (!is_virt(fd) && !is_virt(in)))
            return 0;
        loff_t off_in = (loff_t)e->splice_off_in, off_out = (loff_t)e->off;
        *res = result(splice(in, e->splice_off_in == (uint64_t)-1 ? NULL : &off_in, fd,
                             e->off == (uint64_t)-1 ? NULL : &off_out, e->len, e->splice_flags));
        return 1;
    }
    if (e->flags & IOSQE_FIXED_FILE || !is_virt(fd))
        return 0;
    /* an offset of -1 is the file position, as preadv2 and pwritev2 take it */
    off_t off = e->off == (uint64_t)-1 ? -1 : (off_t)e->off;
    struct iovec one = {(void *)(uintptr_t)e->addr, e->len};
    switch (e->opcode) {
    case IORING_OP_READ:
    case IORING_OP_READ_FIXED:
        *res = result(preadv2(fd, &one, 1, off, (int)e->rw_flags));
        return 1;
    case IORING_OP_WRITE:
    case IORING_OP_WRITE_FIXED:
        *res = result(pwritev2(fd, &one, 1, off, (int)e->rw_flags));
        return 1;
    case IORING_OP_READV:
        *res = result(preadv2(fd, (const struct iovec *)(uintptr_t)e->addr, (int)e->len, off, (int)e->rw_flags));
        return 1;
    case IORING_OP_WRITEV:
        *res = result(pwritev2(fd, (const struct iovec *)(uintptr_t)e->addr, (int)e->len, off, (int)e->rw_flags));
        return 1;
    case IORING_OP_FSYNC:
        *res = result(e->fsync_flags & IORING_FSYNC_DATASYNC ? fdatasync(fd) : fsync(fd));
        return 1;
    case IORING_OP_FALLOCATE:
        *res = result(fallocate(fd, (int)e->len, (off_t)e->off, (off_t)e->addr));
        return 1;
    case IORING_OP_FADVISE:
        *res = -posix_fadvise(fd, (off_t)e->off, (off_t)e->len, (int)e->fadvise_advice);
        return 1;
    case IORING_OP_CLOSE:
        if (e->file_index)
            return 0;
        *res = result(close(fd));
        return 1;
    case IORING_OP_NOP:
    case IORING_OP_POLL_ADD:
    case IORING_OP_POLL_REMOVE:
    case IORING_OP_ASYNC_CANCEL:
    case IORING_OP_TIMEOUT:
    case IORING_OP_TIMEOUT_REMOVE:
    case IORING_OP_LINK_TIMEOUT:
        return 0;                       /* no file data: the shadow answers as the file would */
    }
    *res = -EOPNOTSUPP;                 /* xattrs and the rest: never on the shadow */
    return 1;
}

/* before the kernel takes to_submit entries from the ring of fd */
void uring_entering(int fd, unsigned to_submit, unsigned flags)
{
    if (!nrings || !to_submit || (flags & IORING_ENTER_REGISTERED_RING))
        return;
    pthread_mutex_lock(&lock);
    struct ring *r = find(fd);
    if (!r || !r->sq || !r->sqes || (r->flags & (IORING_SETUP_SQPOLL | SETUP_NO_MMAP))) {
        pthread_mutex_unlock(&lock);
        return;
    }
    struct ring ring = *r;
    pthread_mutex_unlock(&lock);
    unsigned head = __atomic_load_n((unsigned *)(ring.sq + ring.off.head), __ATOMIC_ACQUIRE);
    unsigned tail = __atomic_load_n((unsigned *)(ring.sq + ring.off.tail), __ATOMIC_ACQUIRE);
    unsigned mask = *(unsigned *)(ring.sq + ring.off.ring_mask);
    size_t size = ring.flags & IORING_SETUP_SQE128 ? 128 : 64;
    unsigned n = tail - head < to_submit ? tail - head : to_submit;
    for (unsigned i = 0; i < n; i++) {
        unsigned idx = (head + i) & mask;
        if (!(ring.flags & SETUP_NO_SQARRAY))
            idx = ((unsigned *)(ring.sq + ring.off.array))[idx];
        if (idx >= ring.entries || (idx + 1) * size > ring.sqes_len)
            continue;                   /* the kernel refuses it itself */
        struct io_uring_sqe *e = (struct io_uring_sqe *)(ring.sqes + idx * size);
        int res;
        if (!serve(e, &res))
            continue;
        uint64_t data = e->user_data;
        uint8_t keep = e->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_IO_DRAIN | IOSQE_CQE_SKIP_SUCCESS);
        memset(e, 0, size);
        e->opcode = IORING_OP_NOP;
        e->flags = keep;
        e->fd = -1;
        e->len = (uint32_t)res;
        e->rw_flags = (int)NOP_INJECT_RESULT;
        e->user_data = data;
    }
}
