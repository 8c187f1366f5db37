/* The shim's costs, timed from C so the same binary runs natively and under `pyfalloc run`:
 *
 *   shimbench openclose PATH N          N open+close of PATH (a host file: the fast path)
 *   shimbench fallocate PATH N PHYS     N one-block fallocate2 calls at PHYS, PHYS+bs, ...
 *                                       (PHYS = -1: plain fallocate, as on a host file)
 *   shimbench write PATH MIB            sequential 1 MiB writes to a new file, then fsync
 *   shimbench read PATH MIB             sequential 1 MiB reads
 *
 * Prints the seconds the loop took. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

#define MIB (1 << 20)


int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: shimbench openclose|fallocate|write|read PATH N [PHYS]\n");
        return 2;
    }
    const char *op = argv[1], *path = argv[2];
    long n = atol(argv[3]);
    double t0 = 0, t1 = 0;
    if (!strcmp(op, "openclose")) {
        t0 = now();
        for (long i = 0; i < n; i++) {
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                die("open");
            close(fd);
        }
        t1 = now();
    } else if (!strcmp(op, "fallocate")) {
        long long phys = argc > 4 ? atoll(argv[4]) : -1;
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            die("open");
        t0 = now();
        for (long i = 0; i < n; i++) {
            /* every other block, so each call allocates a new extent */
            off_t off = (off_t)i * 8192;
            long r = phys < 0 ? fallocate(fd, 0, off, 4096)
                              : syscall(486, fd, 0, off, 4096, (uint64_t)phys + (uint64_t)i * 8192);
            if (r < 0)
                die("fallocate");
        }
        t1 = now();
        close(fd);
    } else if (!strcmp(op, "write") || !strcmp(op, "read")) {
        int writing = !strcmp(op, "write");
        char *buf = malloc(MIB);
        memset(buf, 'w', MIB);
        int fd = open(path, writing ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
        if (fd < 0)
            die("open");
        t0 = now();
        for (long i = 0; i < n; i++)
            if ((writing ? write(fd, buf, MIB) : read(fd, buf, MIB)) != MIB)
                die(op);
        if (writing && fsync(fd) < 0)
            die("fsync");
        t1 = now();
        close(fd);
        free(buf);
    } else {
        fprintf(stderr, "unknown operation %s\n", op);
        return 2;
    }
    printf("%.6f\n", t1 - t0);
    return 0;
}
