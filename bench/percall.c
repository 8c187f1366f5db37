/* Per-call costs of the file API, timed from C so the same binary runs on a kernel
 * filesystem and, under `pyfalloc run`, on an image:
 *
 *   percall DIR N       one line per call, "name microseconds-per-call", each the mean of N
 *   percall DIR start   one stat of DIR, the process's first call: prints its microseconds */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

#define BS 4096


static char *at(const char *dir, const char *name)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void report(const char *name, double t0, int n)
{
    printf("%s %.3f\n", name, (now() - t0) / n * 1e6);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: percall DIR N\n");
        return 2;
    }
    const char *dir = argv[1];
    if (!strcmp(argv[2], "start")) {
        struct stat st;
        double t = now();
        int r = stat(dir, &st);
        report("first_call", t, 1);
        return r < 0;
    }
    int n = atoi(argv[2]);
    char name[64], buf[BS];
    memset(buf, 'x', sizeof buf);

    int fd = open(at(dir, "data"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open data");

    double t = now();
    for (int i = 0; i < n; i++)
        if (fallocate(fd, 0, (off_t)i * BS, BS) < 0)
            die("fallocate");
    report("fallocate_1_block", t, n);

    t = now();
    for (int i = 0; i < n; i++)
        if (pwrite(fd, buf, BS, (off_t)i * BS) != BS)     /* into allocated (unwritten) blocks */
            die("pwrite");
    report("pwrite_4k_first", t, n);

    t = now();
    for (int i = 0; i < n; i++)
        if (pwrite(fd, buf, BS, (off_t)i * BS) != BS)     /* overwrite of written blocks */
            die("pwrite");
    report("pwrite_4k_overwrite", t, n);

    int g = open(at(dir, "grow"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    t = now();
    for (int i = 0; i < n; i++)
        if (pwrite(g, buf, BS, (off_t)i * BS) != BS)      /* past the end: new blocks */
            die("pwrite");
    report("pwrite_4k_append", t, n);
    close(g);

    t = now();
    for (int i = 0; i < n; i++)
        if (pread(fd, buf, BS, (off_t)(i % n) * BS) != BS)
            die("pread");
    report("pread_4k", t, n);

    struct stat st;
    t = now();
    for (int i = 0; i < n; i++)
        if (stat(at(dir, "data"), &st) < 0)
            die("stat");
    report("stat", t, n);

    t = now();
    for (int i = 0; i < n; i++) {
        int f = open(at(dir, "data"), O_RDONLY);
        if (f < 0)
            die("open");
        close(f);
    }
    report("open_close", t, n);

    t = now();
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "c%d", i);
        int f = open(at(dir, name), O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (f < 0)
            die("create");
        close(f);
        if (unlink(at(dir, name)) < 0)
            die("unlink");
    }
    report("create_unlink", t, n);

    if (mkdir(at(dir, "many"), 0755) < 0)
        die("mkdir");
    char many[4096];
    snprintf(many, sizeof many, "%s/many", dir);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "e%d", i);
        int f = open(at(many, name), O_WRONLY | O_CREAT, 0644);
        if (f < 0)
            die("create");
        close(f);
    }
    int rounds = n / 100 > 0 ? n / 100 : 1;
    t = now();
    for (int r = 0; r < rounds; r++) {
        DIR *d = opendir(many);
        if (!d)
            die("opendir");
        int count = 0;
        while (readdir(d))
            count++;
        closedir(d);
        if (count != 1002)
            die("readdir count");
    }
    report("readdir_1000", t, rounds);

    t = now();
    if (fsync(fd) < 0)
        die("fsync");
    report("fsync", t, 1);
    close(fd);
    return 0;
}
