/* stdio on image files. glibc's FILE writes through its internal __write, which no preload
 * can reach, so a stream on an image file is a fopencookie FILE whose reads and writes come
 * back through this shim: fopen, fdopen, freopen, and the standard streams, which follow
 * descriptors 0-2 whenever one of them becomes an image file (a shell's `> /pyfalloc/f`, an
 * inherited redirection) and back. */
#include "interpose.h"

REAL(FILE *, fopen, const char *, const char *)
REAL(FILE *, fopen64, const char *, const char *)
REAL(FILE *, fdopen, int, const char *)
REAL(FILE *, freopen, const char *, const char *, FILE *)
REAL(FILE *, freopen64, const char *, const char *, FILE *)
REAL(int, fileno, FILE *)
REAL(int, fileno_unlocked, FILE *)

#define MAX_STREAMS 1024
struct cookie { int fd, owns; FILE *f; };
static struct cookie *streams[MAX_STREAMS];
static int nstreams;

static ssize_t ck_read(void *c, char *buf, size_t n) { return read(((struct cookie *)c)->fd, buf, n); }
static ssize_t ck_write(void *c, const char *buf, size_t n) { return write(((struct cookie *)c)->fd, buf, n); }
static int ck_seek(void *c, off64_t *pos, int whence)
{
    off_t r = lseek(((struct cookie *)c)->fd, (off_t)*pos, whence);
    if (r < 0)
        return -1;
    *pos = r;
    return 0;
}

/* a standard stream leaves its descriptor open; fopen's and fdopen's close theirs */
static int ck_close(void *c)
{
    struct cookie *k = c;
    for (int i = 0; i < nstreams; i++)
        if (streams[i] == k) {
            streams[i] = streams[--nstreams];
            break;
        }
    int r = k->owns ? close(k->fd) : 0;
    free(k);
    return r;
}

/* a FILE over image descriptor fd */
static FILE *cookie_stream(int fd, const char *mode, int owns)
{
    struct cookie *k = malloc(sizeof *k);
    if (nstreams == MAX_STREAMS || !k) {
        free(k);
        errno = EMFILE;
        return NULL;
    }
    cookie_io_functions_t io = {ck_read, ck_write, ck_seek, ck_close};
    *k = (struct cookie){fd, owns, NULL};
    if (!(k->f = fopencookie(k, mode, io))) {
        free(k);
        return NULL;
    }
    streams[nstreams++] = k;
    return k->f;
}

static int stream_fd(FILE *f)
{
    for (int i = 0; i < nstreams; i++)
        if (streams[i]->f == f)
            return streams[i]->fd;
    return -1;
}

int fileno(FILE *f)
{
    int fd = stream_fd(f);
    if (fd >= 0)
        return fd;
    load_fileno();
    return real_fileno(f);
}

int fileno_unlocked(FILE *f)
{
    int fd = stream_fd(f);
    if (fd >= 0)
        return fd;
    load_fileno_unlocked();
    return real_fileno_unlocked(f);
}

static int stdio_flags(const char *mode)
{
    int flags = mode[0] == 'r' ? 0 : mode[0] == 'w' ? O_CREAT | O_TRUNC : O_CREAT | O_APPEND;
    int rw = strchr(mode, '+') != NULL;
    flags |= rw ? O_RDWR : mode[0] == 'r' ? O_RDONLY : O_WRONLY;
    if (strchr(mode, 'x'))
        flags |= O_EXCL;
    if (strchr(mode, 'e'))
        flags |= O_CLOEXEC;
    return flags;
}

static FILE *image_fopen(const char *path, const char *mode)
{
    if (!mode || !strchr("rwa", mode[0])) {
        errno = EINVAL;
        return NULL;
    }
    int fd = open_image(path, stdio_flags(mode), 0666);
    if (fd < 0)
        return NULL;
    if (!is_virt(fd)) {                 /* a link led out of the image: a host file */
        load_fdopen();
        return real_fdopen(fd, mode);
    }
    FILE *f = cookie_stream(fd, mode, 1);
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

FILE *fopen(const char *path, const char *mode)
{
    const char *ip = HERE(path);
    if (ip)
        return image_fopen(ip, mode);
    load_fopen();
    return real_fopen(alias(path), mode);
}

FILE *fopen64(const char *path, const char *mode)
{
    const char *ip = HERE(path);
    if (ip)
        return image_fopen(ip, mode);
    load_fopen64();
    return real_fopen64(alias(path), mode);
}

FILE *fdopen(int fd, const char *mode)
{
    if (is_virt(fd))
        return cookie_stream(fd, mode, 1);
    load_fdopen();
    return real_fdopen(fd, mode);
}

/* ---- the standard streams ------------------------------------------------------------------------ */
static FILE *std_orig[3];        /* libc's stream while a cookie stands in for it */
static FILE *std_ck[3];

static FILE **std_var(int fd) { return fd == 0 ? &stdin : fd == 1 ? &stdout : &stderr; }

/* before descriptor fd changes: what the stream buffered goes where it was meant to */
void std_before_change(int fd)
{
    if (fd >= 1 && fd <= 2)
        fflush(*std_var(fd));
}

void std_rebind(int fd)
{
    if (fd < 0 || fd > 2)
        return;
    FILE **var = std_var(fd);
    if (is_virt(fd) && !std_ck[fd]) {
        FILE *f = cookie_stream(fd, fd == 0 ? "r" : "w", 0);
        if (!f)
            return;
        if (fd == 2)
            setvbuf(f, NULL, _IONBF, 0);
        std_orig[fd] = *var;
        std_ck[fd] = *var = f;
    } else if (!is_virt(fd) && std_ck[fd]) {
        FILE *f = std_ck[fd];
        *var = std_orig[fd];
        std_ck[fd] = std_orig[fd] = NULL;
        fclose(f);
    }
}

static int std_fd(FILE *f)
{
    for (int fd = 0; fd <= 2; fd++)
        if (f && (f == std_ck[fd] || f == std_orig[fd] || f == *std_var(fd)))
            return fd;
    return -1;
}

/* freopen onto the image: a standard stream keeps its descriptor number (the new file is
 * dup2'ed there and the cookie takes over); another stream becomes a new cookie FILE */
static FILE *image_freopen(const char *path, const char *mode, FILE *stream)
{
    int fd = std_fd(stream);
    if (fd < 0) {
        fclose(stream);
        return image_fopen(path, mode);
    }
    fflush(stream);
    int nfd = open_image(path, stdio_flags(mode), 0666);
    if (nfd < 0)
        return NULL;
    if (nfd != fd) {
        int r = dup2(nfd, fd);
        int e = errno;
        close(nfd);
        if (r < 0) {
            errno = e;
            return NULL;
        }
    }
    return *std_var(fd);
}

FILE *freopen(const char *path, const char *mode, FILE *stream)
{
    const char *ip = HERE(path);
    if (ip)
        return image_freopen(ip, mode, stream);
    load_freopen();
    return real_freopen(alias(path), mode, stream);
}

FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
    const char *ip = HERE(path);
    if (ip)
        return image_freopen(ip, mode, stream);
    load_freopen64();
    return real_freopen64(alias(path), mode, stream);
}

/* dprintf and vdprintf write through glibc's internal write: formatted here, written by the
 * interposed write */
REAL(int, vdprintf, int, const char *, va_list)

int vdprintf(int fd, const char *fmt, va_list ap)
{
    if (!is_virt(fd)) {
        load_vdprintf();
        return real_vdprintf(fd, fmt, ap);
    }
    char *text;
    int n = vasprintf(&text, fmt, ap);
    if (n < 0)
        return -1;
    ssize_t w = write(fd, text, (size_t)n);
    free(text);
    return w < 0 ? -1 : (int)w;
}

int dprintf(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vdprintf(fd, fmt, ap);
    va_end(ap);
    return r;
}
