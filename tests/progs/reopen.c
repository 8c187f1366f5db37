/* Descriptors of files opened again while nothing changed (on the image the shim answers
 * such opens without Python): each open below comes after an identical open and close, and
 * every call a program makes on a descriptor is tried on it. Prints one line per result, so
 * a run in a kernel directory and one on the image must print the same.
 *
 *   reopen DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[8192];

static const char *at(const char *dir, const char *name)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* an open preceded by the same open and close */
static int again(const char *path, int flags)
{
    int fd = open(path, flags, 0644);
    if (fd >= 0)
        close(fd);
    return open(path, flags, 0644);
}

static void show(const char *what, long r)
{
    printf("%s: %ld %s\n", what, r, r < 0 ? strerror(errno) : "");
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *d = argv[1];
    int w = open(at(d, "f"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 100; i++)
        dprintf(w, "line %03d of the file\n", i);
    close(w);
    mkdir(at(d, "sub"), 0755);
    close(open(at(d, "sub/inner"), O_WRONLY | O_CREAT, 0600));

    int fd = again(at(d, "f"), O_RDONLY);
    struct stat st;
    show("fstat", fstat(fd, &st));
    printf("size %ld mode %o nlink %ld\n", (long)st.st_size, st.st_mode, (long)st.st_nlink);
    show("read", read(fd, buf, 30));
    printf("bytes: %.30s\n", buf);
    show("lseek cur", lseek(fd, 0, SEEK_CUR));
    show("pread", pread(fd, buf, 20, 2000));
    printf("bytes: %.20s\n", buf);
    show("F_GETFL", fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND));
    show("F_GETFD", fcntl(fd, F_GETFD));
    int dupped = dup(fd);
    show("dup read", read(dupped, buf, 10));
    show("shared offset", lseek(fd, 0, SEEK_CUR));
    close(dupped);
    show("flock", flock(fd, LOCK_SH));
    show("write on O_RDONLY", write(fd, "x", 1));
    char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("mmap: %.12s\n", m == MAP_FAILED ? "failed" : m);
    if (m != MAP_FAILED)
        munmap(m, 4096);
    show("close", close(fd));
    show("close again", close(fd));

    /* writable, appending, truncated */
    fd = again(at(d, "f"), O_RDWR);
    show("pwrite", pwrite(fd, "CHANGED", 7, 5));
    show("ftruncate", ftruncate(fd, 1000));
    show("fsync", fsync(fd));
    close(fd);
    fd = again(at(d, "f"), O_WRONLY | O_APPEND);
    show("append", write(fd, "tail\n", 5));
    show("append offset", lseek(fd, 0, SEEK_CUR));
    close(fd);
    fd = again(at(d, "f"), O_RDONLY);
    show("size after", lseek(fd, 0, SEEK_END));
    show("pread changed", pread(fd, buf, 12, 0));
    printf("bytes: %.12s\n", buf);
    close(fd);

    /* a directory: listing, *at calls and fchdir through it */
    int dfd = again(at(d, "sub"), O_RDONLY | O_DIRECTORY);
    int in = openat(dfd, "inner", O_RDONLY);
    show("openat", in >= 0);
    close(in);
    show("fstatat", fstatat(dfd, "inner", &st, 0));
    printf("inner mode %o\n", st.st_mode);
    int ddup = dup(dfd);
    DIR *dir = fdopendir(ddup);
    int n = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        n++;
    printf("entries %d\n", n);
    if (dir)
        closedir(dir);
    show("fchdir", fchdir(dfd));
    show("relative open", (in = open("inner", O_RDONLY)) >= 0);
    close(in);
    close(dfd);
    chdir("/");

    /* errors kept as answers: the second ENOENT and ENOTDIR come the same */
    show("missing", again(at(d, "missing"), O_RDONLY));
    show("not a directory", again(at(d, "f/x"), O_RDONLY));
    show("directory for writing", again(at(d, "sub"), O_WRONLY));

    /* unlinked while open through such a descriptor, then read by a child */
    fd = again(at(d, "f"), O_RDONLY);
    show("unlink", unlink(at(d, "f")));
    pid_t pid = fork();
    if (pid == 0) {
        ssize_t r = pread(fd, buf, 12, 0);
        printf("child read %zd: %.12s\n", r, buf);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    show("parent read", pread(fd, buf, 5, 995));
    printf("bytes: %.5s\n", buf);
    close(fd);
    show("gone", open(at(d, "f"), O_RDONLY));
    return 0;
}
