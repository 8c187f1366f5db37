/* Raw directory reads of image directories: getdents64 and getdirentries(64), and the
 * getdents system calls by number. The shadow of a directory is no directory (the kernel
 * answers ENOTDIR), so the records are made here from the volume's listing, "." and ".."
 * first; the descriptor's position (the shadow's) counts entries, and each record's d_off
 * is the position after it, so lseek to a d_off resumes there. */
#include "interpose.h"
#include <dirent.h>
#include <stddef.h>
#include <sys/syscall.h>

REAL(ssize_t, getdents64, int, void *, size_t)
REAL(ssize_t, getdirentries, int, char *, size_t, off_t *)
REAL(long, syscall, long, ...)

/* the kernel's struct linux_dirent of the old getdents: d_type sits in the last byte */
struct old_dirent {
    unsigned long d_ino, d_off;
    unsigned short d_reclen;
    char d_name[];
};

static ssize_t fill(int fd, char *buf, size_t n, int old)
{
    off_t pos = k_lseek(fd, 0, SEEK_CUR);
    long long len;
    char *data = pos < 0 ? NULL : image_listing(fd, &len);
    if (!data)
        return -1;
    const char *p = data, *end = data + len;
    long long index = 0;
    size_t used = 0;
    while (p < end) {
        unsigned long long ino;
        unsigned type;
        const char *name;
        const char *next = listing_entry(p, &ino, &type, &name);
        size_t nl = strlen(name);
        if (index < pos) {
            index++;
            p = next;
            continue;
        }
        size_t reclen = old ? (offsetof(struct old_dirent, d_name) + nl + 2 + 7) & ~(size_t)7
                            : (offsetof(struct dirent64, d_name) + nl + 1 + 7) & ~(size_t)7;
        if (used + reclen > n)
            break;
        char *r = buf + used;
        memset(r, 0, reclen);
        if (old) {
            struct old_dirent *o = (struct old_dirent *)r;
            o->d_ino = ino;
            o->d_off = (unsigned long)(index + 1);
            o->d_reclen = (unsigned short)reclen;
            memcpy(o->d_name, name, nl);
            r[reclen - 1] = (char)type;
        } else {
            struct dirent64 *e = (struct dirent64 *)r;
            e->d_ino = ino;
            e->d_off = index + 1;
            e->d_reclen = (unsigned short)reclen;
            e->d_type = (unsigned char)type;
            memcpy(e->d_name, name, nl);
        }
        used += reclen;
        index++;
        p = next;
    }
    int more = p < end;
    free(data);
    if (!used && more) {
        errno = EINVAL;             /* the buffer cannot hold the next entry */
        return -1;
    }
    k_lseek(fd, index, SEEK_SET);
    return (ssize_t)used;
}

ssize_t getdents64(int fd, void *buf, size_t n)
{
    if (is_virt(fd))
        return fill(fd, buf, n, 0);
    load_getdents64();
    return real_getdents64(fd, buf, n);
}

ssize_t getdirentries(int fd, char *buf, size_t n, off_t *base)
{
    if (!is_virt(fd)) {
        load_getdirentries();
        return real_getdirentries(fd, buf, n, base);
    }
    off_t at = k_lseek(fd, 0, SEEK_CUR);
    ssize_t r = fill(fd, buf, n, 0);    /* struct dirent is struct dirent64 on 64-bit Linux */
    if (r >= 0)
        *base = at;
    return r;
}

ssize_t getdirentries64(int fd, char *buf, size_t n, off64_t *base)
{
    return getdirentries(fd, buf, n, (off_t *)base);
}

/* syscall(SYS_getdents, ...): the old records */
long image_getdents(int fd, void *buf, size_t n)
{
    if (is_virt(fd))
        return fill(fd, buf, n, 1);
    load_syscall();
    return real_syscall(SYS_getdents, fd, buf, n);
}
