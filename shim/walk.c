/* glibc functions that walk or resolve paths from inside glibc (its internal opendir, stat and
 * openat aliases never reach a preload): realpath, scandir, glob, ftw and nftw. For image paths
 * they are done here with the interposed calls; host paths go to glibc. */
#define _GNU_SOURCE
#include "interpose.h"
#include <dirent.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <stddef.h>

REAL(char *, realpath, const char *, char *)
REAL(int, scandir, const char *, struct dirent ***, int (*)(const struct dirent *),
     int (*)(const struct dirent **, const struct dirent **))
REAL(int, glob, const char *, int, int (*)(const char *, int), glob_t *)
REAL(int, nftw, const char *, int (*)(const char *, const struct stat *, int, struct FTW *), int, int)
REAL(int, ftw, const char *, int (*)(const char *, const struct stat *, int), int)

/* ---- realpath: resolved by the volume (links, ".", "..") ----------------------------------------- */
char *realpath(const char *path, char *resolved)
{
    const char *ip = HERE(path);
    if (!ip) {
        load_realpath();
        return real_realpath(alias(path), resolved);
    }
    char inside[PATH_MAX];
    if (PY(pyf_realpath(inner(ip), inside, sizeof inside)) < 0) {
        const char *host = left_image();
        if (!host)
            return NULL;
        char there[PATH_MAX];       /* a link led out of the image: the host resolves the rest */
        snprintf(there, sizeof there, "%s", host);
        load_realpath();
        return real_realpath(there, resolved);
    }
    char full[PATH_MAX];
    if (!outer(inside, full, sizeof full))
        return NULL;
    if (!resolved && !(resolved = malloc(PATH_MAX)))
        return NULL;
    return memcpy(resolved, full, strlen(full) + 1);
}

char *canonicalize_file_name(const char *path) { return realpath(path, NULL); }

/* ---- scandir ------------------------------------------------------------------------------------ */
static int image_scandir(const char *dir, struct dirent ***list, int (*keep)(const struct dirent *),
                         int (*order)(const struct dirent **, const struct dirent **))
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent **out = NULL, *e;
    size_t n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (keep && !keep(e))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            struct dirent **grown = realloc(out, cap * sizeof *out);
            if (!grown)
                goto fail;
            out = grown;
        }
        size_t size = offsetof(struct dirent, d_name) + strlen(e->d_name) + 1;
        if (!(out[n] = malloc(size > sizeof *e ? size : sizeof *e)))
            goto fail;
        memcpy(out[n++], e, size);
    }
    closedir(d);
    if (order)
        qsort(out, n, sizeof *out, (int (*)(const void *, const void *))order);
    *list = out;
    return (int)n;
fail:
    while (n--)
        free(out[n]);
    free(out);
    closedir(d);
    errno = ENOMEM;
    return -1;
}

int scandir(const char *dir, struct dirent ***list, int (*keep)(const struct dirent *),
            int (*order)(const struct dirent **, const struct dirent **))
{
    if (HERE(dir))
        return image_scandir(dir, list, keep, order);
    load_scandir();
    return real_scandir(alias(dir), list, keep, order);
}

/* the 64 names: on x86_64 their structs are the same as the plain ones */
int scandir64(const char *dir, struct dirent64 ***list, int (*keep)(const struct dirent64 *),
              int (*order)(const struct dirent64 **, const struct dirent64 **))
{
    return scandir(dir, (struct dirent ***)list, (int (*)(const struct dirent *))keep,
                   (int (*)(const struct dirent **, const struct dirent **))order);
}

int scandirat(int dirfd, const char *dir, struct dirent ***list, int (*keep)(const struct dirent *),
              int (*order)(const struct dirent **, const struct dirent **))
{
    const char *ip = image_path(dirfd, dir);
    if (ip) {
        char full[PATH_MAX];
        if (snprintf(full, sizeof full, "%s", ip) >= (int)sizeof full)
            return failed_errno(ENAMETOOLONG);
        return image_scandir(full, list, keep, order);
    }
    if (dirfd == AT_FDCWD || dir[0] == '/' || alias_dir(dirfd, dir) == AT_FDCWD)
        return scandir(alias(dir), list, keep, order);
    int (*real_at)(int, const char *, struct dirent ***, int (*)(const struct dirent *),
                   int (*)(const struct dirent **, const struct dirent **)) =
        (int (*)(int, const char *, struct dirent ***, int (*)(const struct dirent *),
                 int (*)(const struct dirent **, const struct dirent **)))dlsym(RTLD_NEXT, "scandirat");
    return real_at(dirfd, dir, list, keep, order);
}

int scandirat64(int dirfd, const char *dir, struct dirent64 ***list, int (*keep)(const struct dirent64 *),
                int (*order)(const struct dirent64 **, const struct dirent64 **))
{
    return scandirat(dirfd, dir, (struct dirent ***)list, (int (*)(const struct dirent *))keep,
                     (int (*)(const struct dirent **, const struct dirent **))order);
}

/* ---- glob: glibc's own matcher, reading directories through the interposed calls --------------- */
static void *glob_opendir(const char *p) { return opendir(p); }
static void glob_closedir(void *d) { closedir(d); }
static struct dirent *glob_readdir(void *d) { return readdir(d); }
static int glob_stat(const char *p, struct stat *st) { return stat(p, st); }
static int glob_lstat(const char *p, struct stat *st) { return lstat(p, st); }

int glob(const char *pattern, int flags, int (*on_error)(const char *, int), glob_t *g)
{
    load_glob();
    int on_image = HERE(pattern) != NULL;
    if (!on_image || flags & GLOB_ALTDIRFUNC)
        return real_glob(pattern, flags, on_error, g);
    g->gl_opendir = glob_opendir;
    g->gl_closedir = glob_closedir;
    g->gl_readdir = glob_readdir;
    g->gl_stat = glob_stat;
    g->gl_lstat = glob_lstat;
    return real_glob(pattern, flags | GLOB_ALTDIRFUNC, on_error, g);
}

int glob64(const char *pattern, int flags, int (*on_error)(const char *, int), glob64_t *g)
{
    return glob(pattern, flags, on_error, (glob_t *)g);
}

/* ---- ftw and nftw: a walk of the image tree in readdir order, as glibc walks ----------------------- */
typedef int (*nftw_fn)(const char *, const struct stat *, int, struct FTW *);
typedef int (*ftw_fn)(const char *, const struct stat *, int);

struct walk {
    nftw_fn fn;
    ftw_fn old;             /* ftw's callback, when walking for ftw */
    int flags;
};

static int visit(struct walk *w, const char *path, const struct stat *st, int type, int base, int level)
{
    if (w->old)
        return w->old(path, st, type == FTW_DP ? FTW_D : type);
    struct FTW f = {base, level};
    return w->fn(path, st, type, &f);
}

/* returns the callback's nonzero answer, which stops the walk (FTW_ACTIONRETVAL: its codes) */
static int walk_tree(struct walk *w, char *path, size_t len, int base, int level)
{
    struct stat st;
    int actions = w->flags & FTW_ACTIONRETVAL;
    if (lstat(path, &st) < 0)
        return visit(w, path, &st, FTW_NS, base, level);
    if (!S_ISDIR(st.st_mode))
        return visit(w, path, &st, FTW_F, base, level);
    DIR *d = opendir(path);
    if (!d)
        return visit(w, path, &st, FTW_DNR, base, level);
    int r = 0;
    if (!(w->flags & FTW_DEPTH)) {
        r = visit(w, path, &st, FTW_D, base, level);
        if (actions && r == FTW_SKIP_SUBTREE) {
            closedir(d);
            return 0;
        }
        if (r && !(actions && r == FTW_CONTINUE))
            goto done;
        r = 0;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t n = strlen(e->d_name);
        if (len + 1 + n >= PATH_MAX) {
            errno = ENAMETOOLONG;
            r = -1;
            goto done;
        }
        path[len] = '/';
        memcpy(path + len + 1, e->d_name, n + 1);
        r = walk_tree(w, path, len + 1 + n, (int)len + 1, level + 1);
        path[len] = 0;
        if (actions && r == FTW_SKIP_SIBLINGS) {
            r = 0;
            break;
        }
        if (r && !(actions && (r == FTW_CONTINUE || r == FTW_SKIP_SUBTREE)))
            goto done;
        r = 0;
    }
    if (w->flags & FTW_DEPTH)
        r = visit(w, path, &st, FTW_DP, base, level);
done:
    closedir(d);
    return r;
}

static int image_walk(const char *dir, struct walk *w)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len >= sizeof path)
        return failed_errno(ENAMETOOLONG);
    memcpy(path, dir, len + 1);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = 0;
    const char *slash = strrchr(path, '/');
    int r = walk_tree(w, path, len, slash && slash[1] ? (int)(slash - path) + 1 : 0, 0);
    return w->flags & FTW_ACTIONRETVAL && r == FTW_STOP ? FTW_STOP : r;
}

int nftw(const char *dir, nftw_fn fn, int nopenfd, int flags)
{
    if (HERE(dir)) {
        struct walk w = {fn, NULL, flags};
        return image_walk(dir, &w);
    }
    load_nftw();
    return real_nftw(alias(dir), fn, nopenfd, flags);
}

int nftw64(const char *dir, int (*fn)(const char *, const struct stat64 *, int, struct FTW *), int nopenfd,
           int flags)
{
    return nftw(dir, (nftw_fn)fn, nopenfd, flags);
}

int ftw(const char *dir, ftw_fn fn, int nopenfd)
{
    if (HERE(dir)) {
        struct walk w = {NULL, fn, 0};
        return image_walk(dir, &w);
    }
    load_ftw();
    return real_ftw(alias(dir), fn, nopenfd);
}

int ftw64(const char *dir, int (*fn)(const char *, const struct stat64 *, int), int nopenfd)
{
    return ftw(dir, (ftw_fn)fn, nopenfd);
}
