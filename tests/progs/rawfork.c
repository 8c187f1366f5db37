/* A child made by fork's system call number (no fork handlers run, as stress-ng makes some)
 * changes into DIR through an inherited descriptor and creates a file there by a relative
 * name. Prints what each call gave. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    int d = open(argv[1], O_RDONLY | O_DIRECTORY);
    pid_t pid = (pid_t)syscall(SYS_fork);
    if (pid == 0) {
        printf("fchdir: %s\n", fchdir(d) ? strerror(errno) : "ok");
        int f = open("made-by-child", O_CREAT | O_WRONLY, 0644);
        printf("create: %s\n", f < 0 ? strerror(errno) : "ok");
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("parent sees it: %s\n", access("made-by-child", F_OK) && faccessat(d, "made-by-child", F_OK, 0)
                                       ? strerror(errno) : "yes");
    return 0;
}
