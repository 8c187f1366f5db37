/* mmap of image files. A private mapping is a private copy of the file's bytes, made at
 * mmap: POSIX leaves it unspecified whether later writes by others show through MAP_PRIVATE
 * (git reads its files this way). A shared mapping maps the file's host copy, which every
 * shared mapping of the file and every read and write of it through the volume share
 * (pyfalloc/fs/mapped.py); the process's shared mappings are noted here, so that a munmap
 * or msync of one tells Python which file it was. */
#include "interpose.h"
#include <pthread.h>
#include <sys/mman.h>

REAL(void *, mmap, void *, size_t, int, int, int, off_t)
REAL(int, munmap, void *, size_t)
REAL(int, msync, void *, size_t, int)
REAL(void *, mremap, void *, size_t, size_t, int, void *)

#define MAX_MAPS 1024
struct shared_map {
    char *start, *end;
    long long ino;
};
static struct shared_map maps[MAX_MAPS];
static int nmaps;
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
RECLAIMED_AT_FORK(maps_lock, )

static void note_map(void *m, size_t len, long long ino)
{
    pthread_mutex_lock(&maps_lock);
    if (nmaps < MAX_MAPS)           /* past that, written back at sync and the last user's exit only */
        maps[nmaps++] = (struct shared_map){(char *)m, (char *)m + len, ino};
    pthread_mutex_unlock(&maps_lock);
}

/* the inodes of the noted mappings that [a, b) overlaps (at most n), those wholly inside it
 * forgotten (gone: unmap) and the others cut to what remains of them */
static int overlapping(char *a, char *b, long long *inos, int n, int unmap)
{
    int found = 0;
    pthread_mutex_lock(&maps_lock);
    for (int i = 0; i < nmaps; i++) {
        struct shared_map *m = &maps[i];
        if (m->end <= a || m->start >= b)
            continue;
        if (found < n)
            inos[found++] = m->ino;
        if (!unmap)
            continue;
        if (a <= m->start && b >= m->end) {
            maps[i--] = maps[--nmaps];
        } else if (a <= m->start) {
            m->start = b;
        } else if (b >= m->end) {
            m->end = a;
        }                           /* a hole in the middle: the ends stay noted */
    }
    pthread_mutex_unlock(&maps_lock);
    return found;
}

static void *map_private(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    int keep = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_POPULATE | MAP_NORESERVE | MAP_LOCKED);
    void *m = real_mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | keep, -1, 0);
    if (m == MAP_FAILED)
        return m;
    long long r = image_pread(fd, m, len, off);
    if (r < 0 || mprotect(m, len, prot) < 0) {
        int e = errno;
        real_munmap(m, len);
        errno = e;
        return MAP_FAILED;
    }
    return m;
}

static void *map_shared(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    long long ino;
    long long copy = PY(pyf_map_shared(fd, !!(prot & PROT_WRITE), &ino));
    if (copy < 0 && errno == EROFS && !(prot & PROT_WRITE))
        return map_private(addr, len, prot, flags, fd, off);   /* nobody can change the file */
    if (copy < 0)
        return MAP_FAILED;
    void *m = real_mmap(addr, len, prot, flags, (int)copy, off);
    int e = errno;
    forget_own((int)copy);
    k_close((int)copy);             /* the mapping keeps the open file, and its lock */
    if (m == MAP_FAILED)
        PY(pyf_unmapped(ino, 0));   /* a copy made for nothing goes */
    else
        note_map(m, len, ino);
    errno = e;
    return m;
}

/* the kernel's order: the arguments, the descriptor's access, then the mapping's kind */
static void *map_image(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    long page = sysconf(_SC_PAGESIZE);
    int type = flags & MAP_TYPE;
    if (!len || off < 0 || off % page || (type != MAP_PRIVATE && type != MAP_SHARED && type != MAP_SHARED_VALIDATE)) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    if (vacc[fd] == O_WRONLY) {
        errno = EACCES;
        return MAP_FAILED;
    }
    load_munmap();
    if (type == MAP_PRIVATE)
        return map_private(addr, len, prot, flags, fd, off);
    return map_shared(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    load_mmap();
    if (!(flags & MAP_ANONYMOUS) && is_virt(fd))
        return map_image(addr, len, prot, flags, fd, off);
    void *m = real_mmap(addr, len, prot, flags, fd, off);
    if (m != MAP_FAILED && !(flags & MAP_ANONYMOUS))
        uring_mapped(fd, off, m, len);
    return m;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}

/* a noted mapping that moves or changes size is noted where it went */
void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    void *want = flags & MREMAP_FIXED ? va_arg(ap, void *) : NULL;
    va_end(ap);
    load_mremap();
    void *m = real_mremap(old, old_len, new_len, flags, want);
    if (m != MAP_FAILED && nmaps) {
        pthread_mutex_lock(&maps_lock);
        for (int i = 0; i < nmaps; i++)
            if (maps[i].start == (char *)old) {
                maps[i].start = m;
                maps[i].end = (char *)m + new_len;
            }
        pthread_mutex_unlock(&maps_lock);
    }
    return m;
}

/* the last mapping of a file gone, its copy is written back and dropped */
int munmap(void *addr, size_t len)
{
    load_munmap();
    int r = real_munmap(addr, len);
    if (r == 0)
        uring_unmapped(addr, len);
    if (r == 0 && nmaps && python_ready()) {
        long long inos[16];
        int e = errno, n = overlapping(addr, (char *)addr + len, inos, 16, 1);
        for (int i = 0; i < n; i++)
            PY(pyf_unmapped(inos[i], 0));   /* a failed write-back waits for fsync or exit */
        errno = e;
    }
    return r;
}

/* MS_SYNC: what was stored reaches the image and is durable, as fsync makes it */
int msync(void *addr, size_t len, int flags)
{
    load_msync();
    int r = real_msync(addr, len, flags);
    if (r == 0 && (flags & MS_SYNC) && nmaps && python_ready()) {
        long long inos[16];
        int n = overlapping(addr, (char *)addr + len, inos, 16, 0);
        for (int i = 0; i < n; i++)
            if (PY(pyf_unmapped(inos[i], 1)) < 0)
                return -1;
    }
    return r;
}
