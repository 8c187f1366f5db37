/* The mkstemp family and mkdtemp: glibc opens the file through an internal alias no preload
 * reaches, so for a template on the image the name is made here, as glibc makes it (the
 * trailing XXXXXX replaced, O_CREAT | O_EXCL, mode 0600 or 0700, tried again on EEXIST). */
#include "interpose.h"
#include <sys/random.h>

REAL(int, mkostemps, char *, int, int)
REAL(char *, mkdtemp, char *)

static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/* fill the six X before `suffix` bytes with random letters; EINVAL for a bad template */
static char *xs_of(char *tmpl, int suffix)
{
    size_t len = strlen(tmpl);
    if (suffix < 0 || len < 6 + (size_t)suffix || memcmp(tmpl + len - suffix - 6, "XXXXXX", 6)) {
        errno = EINVAL;
        return NULL;
    }
    return tmpl + len - suffix - 6;
}

static void randomize(char *xs)
{
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (int i = 0; i < 6; i++)
            r[i] = (unsigned char)rand();
    for (int i = 0; i < 6; i++)
        xs[i] = letters[r[i] % (sizeof letters - 1)];
}

/* try names until one is free: make(name) returns >= 0, or -1 with errno */
static int on_image_temp(char *tmpl, int suffix, int (*make)(const char *, int), int flags)
{
    char *xs = xs_of(tmpl, suffix);
    if (!xs)
        return -1;
    for (int attempt = 0; attempt < 62 * 62 * 62; attempt++) {
        randomize(xs);
        int r = make(tmpl, flags);
        if (r >= 0 || errno != EEXIST)
            return r;
    }
    errno = EEXIST;
    return -1;
}

static int make_file(const char *name, int flags)
{
    return open(name, (flags & ~O_ACCMODE) | O_RDWR | O_CREAT | O_EXCL, 0600);
}

static int make_dir(const char *name, int flags)
{
    (void)flags;
    return mkdir(name, 0700);
}

int mkostemps(char *tmpl, int suffix, int flags)
{
    if (HERE(tmpl))
        return on_image_temp(tmpl, suffix, make_file, flags);
    load_mkostemps();
    return real_mkostemps(tmpl, suffix, flags);
}

int mkstemp(char *tmpl) { return mkostemps(tmpl, 0, 0); }
int mkstemp64(char *tmpl) { return mkostemps(tmpl, 0, 0); }
int mkostemp(char *tmpl, int flags) { return mkostemps(tmpl, 0, flags); }
int mkostemp64(char *tmpl, int flags) { return mkostemps(tmpl, 0, flags); }
int mkstemps(char *tmpl, int suffix) { return mkostemps(tmpl, suffix, 0); }
int mkstemps64(char *tmpl, int suffix) { return mkostemps(tmpl, suffix, 0); }
int mkostemps64(char *tmpl, int suffix, int flags) { return mkostemps(tmpl, suffix, flags); }

char *mkdtemp(char *tmpl)
{
    if (HERE(tmpl))
        return on_image_temp(tmpl, 0, make_dir, 0) < 0 ? NULL : tmpl;
    load_mkdtemp();
    return real_mkdtemp(tmpl);
}
