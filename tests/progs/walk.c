/* Functions glibc runs from inside itself (realpath, scandir, glob, nftw, ftw), printed so a
 * run in a host directory and one on the image compare line by line:
 *
 *   walk DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *top;
static size_t top_len;

static void make(const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", top, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, rel, strlen(rel)) < 0 || close(fd) < 0)
        perror(p), exit(1);
}

static int show_nftw(const char *path, const struct stat *st, int type, struct FTW *f)
{
    printf("nftw %s type %d level %d base %s size %lld\n", path + top_len, type, f->level, path + f->base,
           S_ISDIR(st->st_mode) ? 0LL : (long long)st->st_size);
    return 0;
}

static int show_ftw(const char *path, const struct stat *st, int type)
{
    (void)st;
    printf("ftw %s type %d\n", path + top_len, type);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }
static int no_dots(const struct dirent *e) { return e->d_name[0] != '.'; }

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    top = argv[1];
    top_len = strlen(top);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/w", top);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/w/sub", top);
    mkdir(p, 0755);
    make("w/a.txt");
    make("w/b.dat");
    make("w/sub/c.txt");

    char real[PATH_MAX];
    snprintf(p, sizeof p, "%s/w/sub/../a.txt", top);
    printf("realpath %s\n", realpath(p, real) ? real + top_len : strerror(errno));
    snprintf(p, sizeof p, "%s/w/missing", top);
    printf("realpath missing: %s\n", realpath(p, real) ? "found" : strerror(errno));

    struct dirent **list;
    snprintf(p, sizeof p, "%s/w", top);
    int n = scandir(p, &list, no_dots, by_name);
    printf("scandir %d:", n);
    for (int i = 0; i < n; i++) {
        printf(" %s", list[i]->d_name);
        free(list[i]);
    }
    printf("\n");
    free(list);

    glob_t g;
    snprintf(p, sizeof p, "%s/w/*.txt", top);
    int r = glob(p, 0, NULL, &g);
    printf("glob %d:", r);
    for (size_t i = 0; i < g.gl_pathc; i++)
        printf(" %s", g.gl_pathv[i] + top_len);
    printf("\n");
    globfree(&g);
    snprintf(p, sizeof p, "%s/w/*/*.txt", top);
    r = glob(p, GLOB_MARK, NULL, &g);
    printf("glob nested %d: %s\n", r, r == 0 ? g.gl_pathv[0] + top_len : "-");
    globfree(&g);

    snprintf(p, sizeof p, "%s/w", top);
    /* readdir order differs between filesystems: print in a fixed order by sorting lines */
    fflush(stdout);
    nftw(p, show_nftw, 8, FTW_PHYS | FTW_DEPTH);
    ftw(p, show_ftw, 8);
    return 0;
}
