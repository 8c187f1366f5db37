/* The fallocate family: fallocate(64), posix_fallocate(64), fallocate2 (syscall() sends
 * SYS_fallocate, 486 and 487 here: syscall.c), the i386 compat entry of the RFC and the
 * portable struct form. Argument checks are the syscall layer's (pyfalloc/syscalls/), except where a host
 * file's kernel has to be imitated without entering Python. */
#define PYFALLOC_NO_INLINE
#include "interpose.h"

#include "fallocate2.h"

#include <sys/syscall.h>

REAL(int, fallocate, int, int, off_t, off_t)
REAL(int, posix_fallocate, int, off_t, off_t)

int fallocate2(int fd, int mode, off_t offset, off_t len, uint64_t physical)
{
    if (is_virt(fd))
        return (int)PY(pyf_fallocate(fd, mode, offset, len, physical));
    if (physical != NO_HINT) {
        /* a host file: the patched kernel's vfs checks, then its filesystem, which cannot
         * place blocks */
        int fl = k_fcntl(fd, F_GETFL, 0);
        errno = fl < 0 ? EBADF : offset < 0 || len <= 0 ? EINVAL
              : (fl & O_ACCMODE) == O_RDONLY ? EBADF : EOPNOTSUPP;
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
        if (PY(pyf_fallocate(fd, 0, offset, len, NO_HINT)) < 0)
            r = errno;
        errno = saved;
        return r;               /* the error number, not -1 and errno */
    }
    load_posix_fallocate();
    return real_posix_fallocate(fd, offset, len);
}

int posix_fallocate64(int fd, off_t offset, off_t len) { return posix_fallocate(fd, offset, len); }

/* The RFC's i386 entry, as a function: eight 32-bit words joined ((u64)hi << 32) | lo. A
 * real i386 syscall delivers only six registers (ebx ecx edx esi edi ebp), so physical_lo
 * and physical_hi never arrive; fallocate3 below is a form that fits. Returns 0 or -errno,
 * as a kernel entry does. */
long compat_sys_x86_fallocate2(int fd, int mode, unsigned int offset_lo, unsigned int offset_hi,
                               unsigned int len_lo, unsigned int len_hi,
                               unsigned int physical_lo, unsigned int physical_hi)
{
    int saved = errno;
    long r = fallocate2(fd, mode, (off_t)(((uint64_t)offset_hi << 32) | offset_lo),
                        (off_t)(((uint64_t)len_hi << 32) | len_lo),
                        ((uint64_t)physical_hi << 32) | physical_lo);
    r = r < 0 ? -errno : 0;
    errno = saved;
    return r;
}

/* fallocate3(fd, how, size): three words on every ABI. The struct is checked and decoded
 * by the syscall layer (pyfalloc/abi.py), then it is fallocate2 on an image or host file. */
int fallocate3(int fd, const struct fallocate_how *how, size_t size)
{
    long long f[4];
    if (!how) {
        errno = EFAULT;
        return -1;
    }
    long long n = size > (1 << 20) ? (1 << 20) : (long long)size;     /* stays E2BIG, keeps its sign */
    if (PY(pyf_decode_how((const char *)how, n, f)) < 0)
        return -1;
    return fallocate2(fd, (int)f[0], (off_t)f[1], (off_t)f[2], (uint64_t)f[3]);
}

