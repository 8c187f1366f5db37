/* A program with its own renameat2 over syscall(), as gnulib builds one into GNU patch:
 * the shim routes that system call number to its wrapper of the same name, which must be
 * its own and not the program's (the two would call each other until the stack ran out).
 *
 *   own_wrapper DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)
{
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int main(int argc, char **argv)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/own-a", argv[1]);
    snprintf(b, sizeof b, "%s/own-b", argv[1]);
    close(open(a, O_CREAT | O_WRONLY | O_TRUNC, 0644));
    int r = renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE);
    printf("renameat2 %d %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    printf("moved %d %d\n", access(a, F_OK) == 0, access(b, F_OK) == 0);
    close(open(a, O_CREAT | O_WRONLY, 0644));
    r = renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE);
    printf("onto an existing name %d %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    return 0;
}
