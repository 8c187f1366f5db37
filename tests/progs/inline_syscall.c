/* From an image working directory, a relative create by an inline system call instruction
 * (no libc, so no shim) must not create a host file: prints the result.
 *
 *   inline_syscall IMAGE_DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long raw_openat(int dirfd, const char *path, int flags, int mode)
{
    long r;
    register long r10 __asm__("r10") = mode;
    __asm__ volatile("syscall" : "=a"(r) : "0"((long)SYS_openat), "D"((long)dirfd), "S"(path), "d"((long)flags), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 2 || chdir(argv[1]) < 0) {
        perror("chdir");
        return 2;
    }
    long r = raw_openat(AT_FDCWD, "leak", O_WRONLY | O_CREAT, 0644);
    printf("inline openat: %s\n", r < 0 ? strerrorname_np((int)-r) : "created");
    char cwd[4096];
    printf("getcwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : strerror(errno));
    return 0;
}
