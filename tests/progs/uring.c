/* io_uring driven through libc's syscall(), as fio's fallback and stress-ng drive it: one
 * request at a time of each kind a file program uses, on files of DIR; prints each
 * completion's user_data and result, then what the file holds as read by plain pread.
 *
 *   uring DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static int ring;
static char *sq, *cq;
static struct io_uring_sqe *sqes;
static struct io_uring_params p;

static void show(const char *label, const char *b, int n)
{
    printf("%-9s ", label);
    for (int i = 0; i < n; i++)
        putchar(b[i] ? b[i] : '.');
    putchar('\n');
}

static void submit(struct io_uring_sqe *e, const char *what)
{
    unsigned *tail = (unsigned *)(sq + p.sq_off.tail), *array = (unsigned *)(sq + p.sq_off.array);
    unsigned mask = *(unsigned *)(sq + p.sq_off.ring_mask), t = *tail;
    sqes[t & mask] = *e;
    array[t & mask] = t & mask;
    __atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
    long r = syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    unsigned *chead = (unsigned *)(cq + p.cq_off.head), cmask = *(unsigned *)(cq + p.cq_off.ring_mask);
    struct io_uring_cqe *c = (struct io_uring_cqe *)(cq + p.cq_off.cqes) + (*chead & cmask);
    if (c->res < 0)
        printf("%-9s enter %ld data %llu res %s\n", what, r, (unsigned long long)c->user_data, strerrorname_np(-c->res));
    else
        printf("%-9s enter %ld data %llu res %d\n", what, r, (unsigned long long)c->user_data, c->res);
    __atomic_store_n(chead, *chead + 1, __ATOMIC_RELEASE);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    ring = (int)syscall(SYS_io_uring_setup, 8, &p);
    if (ring < 0) {
        perror("io_uring_setup");
        return 2;
    }
    size_t len = p.sq_off.array + p.sq_entries * 4;
    size_t clen = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    sq = mmap(NULL, len > clen ? len : clen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    sqes = mmap(NULL, p.sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    cq = sq;
    if (sq == MAP_FAILED || sqes == MAP_FAILED)
        return 2;
    char path[4096], other[4096];
    snprintf(path, sizeof path, "%s/u1", argv[1]);
    snprintf(other, sizeof other, "%s/u2", argv[1]);

    struct io_uring_sqe e = {.opcode = IORING_OP_OPENAT, .fd = AT_FDCWD, .addr = (uintptr_t)path, .len = 0644,
                             .open_flags = O_RDWR | O_CREAT | O_TRUNC, .user_data = 1};
    submit(&e, "openat");
    int fd = open(path, O_RDWR);
    char a[5000], b[3000], c[6000];
    memset(a, 'A', sizeof a);
    memset(b, 'B', sizeof b);
    e = (struct io_uring_sqe){.opcode = IORING_OP_WRITE, .fd = fd, .addr = (uintptr_t)a, .len = sizeof a, .off = 100, .user_data = 2};
    submit(&e, "write");
    struct iovec iov[2] = {{b, 1000}, {b, 2000}};
    e = (struct io_uring_sqe){.opcode = IORING_OP_WRITEV, .fd = fd, .addr = (uintptr_t)iov, .len = 2, .off = 9000, .user_data = 3};
    submit(&e, "writev");
    e = (struct io_uring_sqe){.opcode = IORING_OP_WRITE, .fd = fd, .addr = (uintptr_t)"pos", .len = 3, .off = (uint64_t)-1, .user_data = 4};
    submit(&e, "write@pos");
    e = (struct io_uring_sqe){.opcode = IORING_OP_FSYNC, .fd = fd, .fsync_flags = IORING_FSYNC_DATASYNC, .user_data = 5};
    submit(&e, "fsync");
    e = (struct io_uring_sqe){.opcode = IORING_OP_FALLOCATE, .fd = fd, .off = 0, .addr = 65536, .len = 0, .user_data = 6};
    submit(&e, "fallocate");
    memset(c, 0, sizeof c);
    e = (struct io_uring_sqe){.opcode = IORING_OP_READ, .fd = fd, .addr = (uintptr_t)c, .len = sizeof c, .off = 96, .user_data = 7};
    submit(&e, "read");
    show("read", c, 8);
    show("read end", c + 5000, 8);
    struct iovec riov[2] = {{c, 10}, {c + 10, 10}};
    e = (struct io_uring_sqe){.opcode = IORING_OP_READV, .fd = fd, .addr = (uintptr_t)riov, .len = 2, .off = 8995, .user_data = 8};
    submit(&e, "readv");
    show("readv", c, 20);
    struct statx sx;
    e = (struct io_uring_sqe){.opcode = IORING_OP_STATX, .fd = AT_FDCWD, .addr = (uintptr_t)path, .len = STATX_SIZE,
                              .addr2 = (uintptr_t)&sx, .user_data = 9};
    submit(&e, "statx");
    printf("statx     size %llu\n", (unsigned long long)sx.stx_size);
    memset(&sx, 0, sizeof sx);
    int fd_at = open(path, O_PATH);       /* stress-ng's way: a name-only descriptor */
    e = (struct io_uring_sqe){.opcode = IORING_OP_STATX, .fd = fd_at, .addr = (uintptr_t)"", .len = STATX_SIZE,
                              .statx_flags = AT_EMPTY_PATH, .addr2 = (uintptr_t)&sx, .user_data = 15};
    submit(&e, "statx fd");
    printf("statx fd  size %llu\n", (unsigned long long)sx.stx_size);
    /* a relative name under a file's descriptor: ENOTDIR (stress-ng 0.15's statx) */
    e = (struct io_uring_sqe){.opcode = IORING_OP_STATX, .fd = fd, .addr = (uintptr_t)"./d/name", .len = STATX_SIZE,
                              .statx_flags = AT_EMPTY_PATH, .addr2 = (uintptr_t)&sx, .user_data = 16};
    submit(&e, "statx under a file");
    e = (struct io_uring_sqe){.opcode = IORING_OP_RENAMEAT, .fd = AT_FDCWD, .addr = (uintptr_t)path, .len = AT_FDCWD,
                              .addr2 = (uintptr_t)other, .user_data = 10};
    submit(&e, "renameat");
    e = (struct io_uring_sqe){.opcode = IORING_OP_SPLICE, .fd = fd, .splice_fd_in = fd, .len = 10, .user_data = 11};
    submit(&e, "splice");
    int pfd[2];
    if (pipe(pfd) < 0)
        return 2;
    e = (struct io_uring_sqe){.opcode = IORING_OP_SPLICE, .fd = pfd[1], .splice_fd_in = fd, .splice_off_in = 100,
                              .off = (uint64_t)-1, .len = 10, .user_data = 14};
    submit(&e, "splice>p");
    memset(c, 0, sizeof c);
    read(pfd[0], c, 10);
    show("pipe", c, 10);
    e = (struct io_uring_sqe){.opcode = IORING_OP_CLOSE, .fd = fd, .user_data = 12};
    submit(&e, "close");
    struct stat st;
    int g = open(other, O_RDONLY);
    fstat(g, &st);
    memset(c, 0, sizeof c);
    pread(g, c, 6, 98);
    printf("file      size %lld blocks>=128 %d\n", (long long)st.st_size, st.st_blocks >= 128);
    show("file", c, 6);
    e = (struct io_uring_sqe){.opcode = IORING_OP_UNLINKAT, .fd = AT_FDCWD, .addr = (uintptr_t)other, .user_data = 13};
    submit(&e, "unlinkat");
    printf("gone      %d\n", access(other, F_OK) < 0 && errno == ENOENT);
    return 0;
}
