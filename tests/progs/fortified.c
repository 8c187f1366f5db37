/* Built with _FORTIFY_SOURCE: its realpath, read, pread, readlink and getcwd become glibc's
 * __*_chk entries, which glibc runs past any interposer. Prints what each answers.
 *
 *   fortified DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char path[PATH_MAX], resolved[PATH_MAX], buf[64], link[64], cwd[PATH_MAX];
    size_t n = (size_t)argc * 8;            /* sizes the compiler cannot see: the _chk forms */
    snprintf(path, sizeof path, "%s/sub/../fortified", argv[1]);
    snprintf(resolved, sizeof resolved, "%s/sub", argv[1]);
    if (mkdir(resolved, 0755) < 0 && errno != EEXIST)
        return 2;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "fortified bytes", 15) != 15)
        return 2;
    lseek(fd, 0, SEEK_SET);
    memset(buf, 0, sizeof buf);
    ssize_t r = read(fd, buf, n);
    printf("read %zd %.*s\n", r, (int)(r > 0 ? r : 0), buf);
    memset(buf, 0, sizeof buf);
    r = pread(fd, buf, n, 4);
    printf("pread %zd %.*s\n", r, (int)(r > 0 ? r : 0), buf);
    char *rp = realpath(path, resolved);
    printf("realpath %s\n", rp ? strrchr(rp, '/') : strerrorname_np(errno));
    r = readlink(path, link, n);
    printf("readlink %zd %s\n", r, r < 0 ? strerrorname_np(errno) : "");
    if (chdir(argv[1]) == 0 && chdir("sub") == 0) {
        char *c = getcwd(cwd, n * 100);
        printf("getcwd %s\n", c ? strrchr(c, '/') : strerrorname_np(errno));
    }
    return 0;
}
