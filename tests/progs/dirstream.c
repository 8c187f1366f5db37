/* A directory stream walked with telldir, seekdir and readdir_r: prints whether seekdir
 * went back to the entries telldir marked, and every name readdir_r gives, sorted.
 *
 *   dirstream DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }
int main(int argc, char **argv) {
    char p[4096];
    snprintf(p, sizeof p, "%s/td", argv[1]); mkdir(p, 0755);
    for (int i = 0; i < 12; i++) { char f[4200]; snprintf(f, sizeof f, "%s/f%02d", p, i); close(open(f, O_CREAT|O_WRONLY, 0644)); }
    DIR *d = opendir(p);
    char *first[4]; for (int i = 0; i < 3; i++) first[i] = strdup(readdir(d)->d_name);
    long pos = telldir(d);
    char *a = strdup(readdir(d)->d_name), *b = strdup(readdir(d)->d_name);
    seekdir(d, pos);
    char *a2 = strdup(readdir(d)->d_name), *b2 = strdup(readdir(d)->d_name);
    printf("seekdir back: %s\n", !strcmp(a, a2) && !strcmp(b, b2) ? "same entries" : "different");
    rewinddir(d);
    struct dirent e, *r; int n = 0; char *names[64];
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    while (readdir_r(d, &e, &r) == 0 && r) names[n++] = strdup(r->d_name);
    qsort(names, n, sizeof *names, cmp);
    printf("readdir_r: %d entries:", n); for (int i = 0; i < n; i++) printf(" %s", names[i]); printf("\n");
    closedir(d);
    return 0;
}
