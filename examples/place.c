/* place: put a new file's blocks exactly at a device offset with fallocate2, the way a
 * compactor would, then show where they went (FIEMAP) and write a line with stdio.
 *
 *   cc -I cdefs -o place examples/place.c
 *   pyfalloc run disk.img -- ./place /pyfalloc/f 64M 8192
 *
 * It uses only the syscall number, so the same binary works on a kernel with the RFC's
 * patch and, through the shim, on a pyfalloc image. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fallocate2.h"

static unsigned long long size_arg(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    switch (*end) {
    case 'G': v <<= 10; /* fall through */
    case 'M': v <<= 10; /* fall through */
    case 'K': v <<= 10;
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s FILE PHYSICAL LENGTH\n", argv[0]);
        return 2;
    }
    unsigned long long physical = size_arg(argv[2]), length = size_arg(argv[3]);
    int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    if (syscall(SYS_fallocate2, fd, 0, 0L, (long)length, physical) != 0) {
        fprintf(stderr, "fallocate2: %s\n", strerror(errno));
        return 1;
    }
    struct {
        struct fiemap head;
        struct fiemap_extent ext[16];
    } fm;
    memset(&fm, 0, sizeof fm);
    fm.head.fm_length = ~0ULL;
    fm.head.fm_extent_count = 16;
    if (ioctl(fd, FS_IOC_FIEMAP, &fm) != 0) {
        perror("FS_IOC_FIEMAP");
        return 1;
    }
    for (unsigned i = 0; i < fm.head.fm_mapped_extents; i++)
        printf("logical %llu physical %llu length %llu flags 0x%x\n", (unsigned long long)fm.ext[i].fe_logical,
               (unsigned long long)fm.ext[i].fe_physical, (unsigned long long)fm.ext[i].fe_length,
               fm.ext[i].fe_flags);
    close(fd);
    FILE *f = fopen(argv[1], "r+");
    if (!f || fprintf(f, "placed at %llu\n", physical) < 0 || fclose(f) != 0) {
        perror("stdio");
        return 1;
    }
    return 0;
}
