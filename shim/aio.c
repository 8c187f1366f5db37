/* Linux AIO (io_submit, as libaio calls it through syscall()) on image files. The kernel
 * would run a request on the shadow, an empty file: reads would find nothing and writes
 * would land off the image, and a program reading back through the same context would not
 * notice. So a request on an image file is carried out here, synchronously, through the
 * interposed calls; then, for its completion to reach the context as every other does (the
 * program's aio_data and iocb address, its eventfd), the iocb is submitted to the kernel
 * once more against a scratch memfd that gives the same result: a read of the same bytes
 * from a copy of them, a write of the same length, an fsync. The kernel serves those
 * inline (memfd I/O never waits), so the scratch can be reused by the next request. */
#include "interpose.h"
#include <linux/aio_abi.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

REAL(long, syscall, long, ...)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int scratch = -1;

static long real_submit(aio_context_t ctx, long n, struct iocb **iocbs)
{
    load_syscall();
    return real_syscall(SYS_io_submit, ctx, n, iocbs);
}

/* a forked child makes a scratch of its own: the inherited one is the parent's description,
 * and the two processes' substitutes would read each other's copies */
static void child_scratch(void)
{
    reclaim_after_fork(&lock);
    if (scratch >= 0) {
        forget_own(scratch);
        k_close(scratch);
        scratch = -1;
    }
}

__attribute__((constructor)) static void aio_init(void) { pthread_atfork(NULL, NULL, child_scratch); }

static int scratch_fd(void)
{
    if (scratch < 0) {
        in_py++;                        /* a descriptor of the shim's own, kept high */
        scratch = keep_high(memfd_create("pyfalloc-aio", MFD_CLOEXEC));
        in_py--;
    }
    return scratch;
}

/* the request's buffers as an iovec array */
static int buffers(const struct iocb *cb, struct iovec *one, const struct iovec **iov)
{
    if (cb->aio_lio_opcode == IOCB_CMD_PREADV || cb->aio_lio_opcode == IOCB_CMD_PWRITEV) {
        *iov = (const struct iovec *)(uintptr_t)cb->aio_buf;
        return (int)cb->aio_nbytes;
    }
    one->iov_base = (void *)(uintptr_t)cb->aio_buf;
    one->iov_len = (size_t)cb->aio_nbytes;
    *iov = one;
    return 1;
}

/* Carry out one request on an image file and point the iocb at the scratch so that the
 * kernel's run of it completes with the same result. -1 and errno: the request failed. */
static int serve(struct iocb *cb)
{
    int fd = (int)cb->aio_fildes, s = scratch_fd();
    if (s < 0)
        return -1;
    struct iovec one;
    const struct iovec *iov;
    ssize_t r;
    switch (cb->aio_lio_opcode) {
    case IOCB_CMD_PREAD:
    case IOCB_CMD_PREADV: {
        int n = buffers(cb, &one, &iov);
        if ((r = preadv2(fd, iov, n, (off_t)cb->aio_offset, (int)cb->aio_rw_flags)) < 0)
            return -1;
        fsize_lift();
        int ok = ftruncate(s, 0) == 0 && pwritev(s, iov, n, 0) >= 0 && ftruncate(s, r) == 0;
        fsize_restore();
        if (!ok)
            return -1;
        break;
    }
    case IOCB_CMD_PWRITE:
    case IOCB_CMD_PWRITEV: {
        int n = buffers(cb, &one, &iov);
        if ((r = pwritev2(fd, iov, n, (off_t)cb->aio_offset, (int)cb->aio_rw_flags)) < 0)
            return -1;
        if (cb->aio_lio_opcode == IOCB_CMD_PWRITE)
            cb->aio_nbytes = (uint64_t)r;       /* a short write stays short */
        if (ftruncate(s, 0) < 0)
            return -1;
        break;
    }
    case IOCB_CMD_FSYNC:
        if (fsync(fd) < 0)
            return -1;
        break;
    case IOCB_CMD_FDSYNC:
        if (fdatasync(fd) < 0)
            return -1;
        break;
    default:
        return 0;                       /* poll, noop: the shadow answers as the file would */
    }
    cb->aio_fildes = (uint32_t)s;
    cb->aio_offset = 0;
    cb->aio_rw_flags = 0;
    return 0;
}

long image_io_submit(unsigned long context, long nr, void *requests)
{
    aio_context_t ctx = (aio_context_t)context;
    struct iocb **iocbs = requests;
    long i = 0, done = 0;
    if (nr <= 0 || !iocbs)
        return real_submit(ctx, nr, iocbs);
    for (i = 0; i < nr && iocbs[i] && !is_virt((int)iocbs[i]->aio_fildes); i++)
        ;
    if (i == nr)
        return real_submit(ctx, nr, iocbs);     /* no image file: the kernel's alone */
    pthread_mutex_lock(&lock);
    for (i = 0; i < nr; i++) {
        struct iocb *cb = iocbs[i];
        long r;
        if (!cb || !is_virt((int)cb->aio_fildes)) {
            r = real_submit(ctx, 1, &iocbs[i]);
        } else {
            struct iocb saved = *cb;
            int e = 0;
            r = serve(cb) < 0 ? (e = errno, -1) : real_submit(ctx, 1, &iocbs[i]);
            if (r < 0 && !e)
                e = errno;
            *cb = saved;            /* the kernel copied it at submission */
            errno = e;
        }
        if (r < 1)
            break;
        done++;
    }
    int e = errno;
    pthread_mutex_unlock(&lock);
    if (done)
        return done;
    errno = e;
    return -1;
}
