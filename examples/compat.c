/* The 32-bit ABI of fallocate2, run three ways:
 *
 *   1. the RFC's i386 compat entry, compat_sys_x86_fallocate2 (exported by libpyfalloc), given
 *      the eight 32-bit halves of (fd, mode, offset, len, physical), on an image file;
 *   2. the portable form, syscall(SYS_fallocate3, fd, &how, sizeof how): three words on any
 *      ABI, on a second image file;
 *   3. a real i386 system call (int $0x80, i386 fallocate = 324) on a host file, its six
 *      argument registers loaded from the first six of those eight words: the kernel joins
 *      the halves it gets, and physical_lo, physical_hi have no register to travel in.
 *
 *     pyfalloc run disk.img -- ./compat /pyfalloc/a /pyfalloc/b /tmp/hostfile OFFSET LEN PHYSICAL
 *
 * Prints the placement FIEMAP reports for 1 and 2, and the host file's size after 3. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fallocate2.h"

#define I386_NR_FALLOCATE 324
static const char *const regs[6] = {"ebx", "ecx", "edx", "esi", "edi", "ebp"};
static const char *const names[8] = {"fd", "mode", "offset_lo", "offset_hi",
                                     "len_lo", "len_hi", "physical_lo", "physical_hi"};

static void words(unsigned int w[8], int fd, int mode, uint64_t offset, uint64_t len, uint64_t physical)
{
    uint64_t v[3] = {offset, len, physical};
    w[0] = (unsigned int)fd;
    w[1] = (unsigned int)mode;
    for (int i = 0; i < 3; i++) {
        w[2 + 2 * i] = (unsigned int)v[i];           /* lo */
        w[3 + 2 * i] = (unsigned int)(v[i] >> 32);   /* hi */
    }
}

static int placement(int fd, const char *label)
{
    struct {
        struct fiemap map;
        struct fiemap_extent ext[4];
    } fm;
    memset(&fm, 0, sizeof fm);
    fm.map.fm_length = FIEMAP_MAX_OFFSET;
    fm.map.fm_extent_count = 4;
    if (ioctl(fd, FS_IOC_FIEMAP, &fm) < 0) {
        perror("FS_IOC_FIEMAP");
        return 1;
    }
    for (unsigned int i = 0; i < fm.map.fm_mapped_extents; i++)
        printf("%s: logical %llu physical %llu length %llu\n", label,
               (unsigned long long)fm.ext[i].fe_logical, (unsigned long long)fm.ext[i].fe_physical,
               (unsigned long long)fm.ext[i].fe_length);
    return 0;
}

/* int $0x80 from 64-bit code: the i386 entry, six 32-bit registers */
static long int80(unsigned int nr, const unsigned int *w)
{
    register const unsigned int *p __asm__("r12") = w;
    long ret;
    __asm__ volatile("push %%rbx\n\tpush %%rbp\n\t"
                     "mov 0(%%r12), %%ebx\n\tmov 4(%%r12), %%ecx\n\tmov 8(%%r12), %%edx\n\t"
                     "mov 12(%%r12), %%esi\n\tmov 16(%%r12), %%edi\n\tmov 20(%%r12), %%ebp\n\t"
                     "int $0x80\n\tpop %%rbp\n\tpop %%rbx"
                     : "=a"(ret)
                     : "a"(nr), "r"(p)
                     : "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
    return ret;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: compat IMAGEFILE1 IMAGEFILE2 HOSTFILE OFFSET LEN PHYSICAL\n");
        return 2;
    }
    uint64_t offset = strtoull(argv[4], NULL, 0), len = strtoull(argv[5], NULL, 0);
    uint64_t physical = strtoull(argv[6], NULL, 0);
    unsigned int w[8];

    /* 1. the compat entry, eight halves */
    long (*compat)(int, int, unsigned int, unsigned int, unsigned int, unsigned int, unsigned int,
                   unsigned int) = (long (*)(int, int, unsigned int, unsigned int, unsigned int, unsigned int,
                                             unsigned int, unsigned int))dlsym(RTLD_DEFAULT, "compat_sys_x86_fallocate2");
    if (!compat) {
        fprintf(stderr, "compat: compat_sys_x86_fallocate2 not found (run under pyfalloc run)\n");
        return 1;
    }
    int a = open(argv[1], O_RDWR | O_CREAT, 0644);
    words(w, a, 0, offset, len, physical);
    for (int i = 0; i < 8; i++)
        printf("%s=%#x%s", names[i], w[i], i == 7 ? "\n" : " ");
    long r = compat((int)w[0], (int)w[1], w[2], w[3], w[4], w[5], w[6], w[7]);
    if (r < 0) {
        fprintf(stderr, "compat_sys_x86_fallocate2: %s\n", strerror((int)-r));
        return 1;
    }
    if (placement(a, "compat"))
        return 1;

    /* 2. the portable form */
    int b = open(argv[2], O_RDWR | O_CREAT, 0644);
    struct fallocate_how how = {.offset = offset, .len = len, .physical = physical + len, .mode = 0};
    if (syscall(SYS_fallocate3, b, &how, sizeof how) < 0) {
        perror("fallocate3");
        return 1;
    }
    if (placement(b, "fallocate3"))
        return 1;

    /* 3. a real i386 syscall: six registers */
    int h = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0644);
    words(w, h, 0, offset, len, physical);
    for (int i = 0; i < 8; i++)
        printf("%s %s%s", names[i], i < 6 ? regs[i] : "no register", i == 7 ? "\n" : ", ");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(int80(I386_NR_FALLOCATE, w) == 0 ? 0 : 1);
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
        printf("i386: the kernel has no i386 entry (signal %d)\n", WTERMSIG(status));
        return 0;
    }
    struct stat st;
    fstat(h, &st);
    printf("i386 fallocate: %s, size %lld\n", WEXITSTATUS(status) ? "failed" : "ok", (long long)st.st_size);
    return 0;
}
