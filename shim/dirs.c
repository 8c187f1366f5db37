/* Directory streams on the image: opendir, fdopendir, readdir(64), readdir(64)_r, closedir,
 * dirfd, rewinddir, telldir, seekdir (ls, find, rm -r). Entries are fetched from Python once
 * per open or rewind; a stream's position is the byte offset of its next entry in them. */
#include "interpose.h"
#include <dirent.h>

#define MAX_DIRS 256
struct image_dir {
    int fd;
    char *data, *next, *end;     /* entries as "ino type name\0", one after the other */
    struct dirent64 ent;
};
static struct image_dir *dirs[MAX_DIRS];

REAL(DIR *, opendir, const char *)
REAL(DIR *, fdopendir, int)
REAL(struct dirent *, readdir, DIR *)
REAL(struct dirent64 *, readdir64, DIR *)
REAL(int, closedir, DIR *)
REAL(int, dirfd, DIR *)
REAL(void, rewinddir, DIR *)
REAL(int, readdir_r, DIR *, struct dirent *, struct dirent **)
REAL(int, readdir64_r, DIR *, struct dirent64 *, struct dirent64 **)
REAL(long, telldir, DIR *)
REAL(void, seekdir, DIR *, long)

static struct image_dir *ours(DIR *d)
{
    for (int i = 0; i < MAX_DIRS; i++)
        if (dirs[i] && (DIR *)dirs[i] == d)
            return dirs[i];
    return NULL;
}

/* The listing of the image directory open as fd, as "ino type name\0" entries one after the
 * other (malloc'd, *len bytes): in one call when it fits a first guess (Python builds it each
 * time it is asked), else a second with the size the first reported. Shared with
 * getdents.c. */
char *image_listing(int fd, long long *len)
{
    long long size = 64 << 10;
    for (;;) {
        char *buf = malloc((size_t)size + 1);
        if (!buf) {
            errno = ENOMEM;
            return NULL;
        }
        long long got = PY(pyf_listdir(fd, buf, size));
        if (got < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return NULL;
        }
        if (got <= size) {
            *len = got;
            return buf;
        }
        free(buf);
        size = got;                 /* the directory grew meanwhile: ask again */
    }
}

/* one entry of a listing at p: its inode and type, its name; the next entry after it */
const char *listing_entry(const char *p, unsigned long long *ino, unsigned *type, const char **name)
{
    char *q;
    *ino = strtoull(p, &q, 10);
    *type = (unsigned)strtoul(q, &q, 10);
    *name = q + 1;
    return *name + strlen(*name) + 1;
}

static int load_entries(struct image_dir *d)
{
    long long len;
    char *buf = image_listing(d->fd, &len);
    if (!buf)
        return -1;
    free(d->data);
    d->data = d->next = buf;
    d->end = buf + len;
    return 0;
}

static DIR *image_fdopendir(int fd)
{
    int slot = 0;
    while (slot < MAX_DIRS && dirs[slot])
        slot++;
    struct image_dir *d = calloc(1, sizeof *d);
    if (slot == MAX_DIRS || !d) {
        free(d);
        errno = EMFILE;
        return NULL;
    }
    d->fd = fd;
    if (load_entries(d) < 0) {
        int e = errno;
        free(d->data);
        free(d);
        errno = e;
        return NULL;
    }
    dirs[slot] = d;
    return (DIR *)d;
}

DIR *opendir(const char *path)
{
    const char *ip = HERE(path);
    if (ip) {
        int fd = open_image(ip, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0)
            return NULL;
        if (!is_virt(fd)) {             /* a link led out of the image: a host directory */
            load_fdopendir();
            return real_fdopendir(fd);
        }
        DIR *d = image_fdopendir(fd);
        if (!d) {
            int e = errno;
            close(fd);
            errno = e;
        }
        return d;
    }
    load_opendir();
    return real_opendir(alias(path));
}

DIR *fdopendir(int fd)
{
    if (is_virt(fd))
        return image_fdopendir(fd);
    load_fdopendir();
    return real_fdopendir(fd);
}

struct dirent64 *readdir64(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_readdir64();
        return real_readdir64(dir);
    }
    if (d->next >= d->end)
        return NULL;            /* the end: errno untouched */
    unsigned long long ino;
    unsigned type;
    const char *name;
    d->next = (char *)listing_entry(d->next, &ino, &type, &name);
    size_t len = strlen(name);
    if (len >= sizeof d->ent.d_name)
        len = sizeof d->ent.d_name - 1;
    d->ent.d_ino = ino;
    d->ent.d_type = (unsigned char)type;
    d->ent.d_reclen = sizeof d->ent;
    memcpy(d->ent.d_name, name, len);
    d->ent.d_name[len] = 0;
    d->ent.d_off = d->next - d->data;
    return &d->ent;
}

struct dirent *readdir(DIR *dir)
{
    if (!ours(dir)) {
        load_readdir();
        return real_readdir(dir);
    }
    return (struct dirent *)readdir64(dir);      /* the same layout on 64-bit Linux */
}

int closedir(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_closedir();
        return real_closedir(dir);
    }
    for (int i = 0; i < MAX_DIRS; i++)
        if (dirs[i] == d)
            dirs[i] = NULL;
    int r = close(d->fd);
    free(d->data);
    free(d);
    return r;
}

int dirfd(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_dirfd();
        return real_dirfd(dir);
    }
    return d->fd;
}

void rewinddir(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_rewinddir();
        real_rewinddir(dir);
        return;
    }
    load_entries(d);
}

/* the reentrant forms: the entry copied into the caller's, NULL at the end */
static int next_into(DIR *dir, struct dirent64 *entry, struct dirent64 **result)
{
    int e = errno;
    errno = 0;
    struct dirent64 *d = readdir64(dir);
    int err = errno;
    errno = e;
    if (!d) {
        *result = NULL;
        return err;
    }
    memcpy(entry, d, sizeof *d);
    *result = entry;
    return 0;
}

int readdir64_r(DIR *dir, struct dirent64 *entry, struct dirent64 **result)
{
    if (!ours(dir)) {
        load_readdir64_r();
        return real_readdir64_r(dir, entry, result);
    }
    return next_into(dir, entry, result);
}

int readdir_r(DIR *dir, struct dirent *entry, struct dirent **result)
{
    if (!ours(dir)) {
        load_readdir_r();
        return real_readdir_r(dir, entry, result);
    }
    return next_into(dir, (struct dirent64 *)entry, (struct dirent64 **)result);
}

long telldir(DIR *dir)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_telldir();
        return real_telldir(dir);
    }
    return d->next - d->data;
}

void seekdir(DIR *dir, long pos)
{
    struct image_dir *d = ours(dir);
    if (!d) {
        load_seekdir();
        real_seekdir(dir, pos);
        return;
    }
    if (pos >= 0 && pos <= d->end - d->data)    /* a position telldir gave */
        d->next = d->data + pos;
}
