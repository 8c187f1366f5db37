/* Descriptor semantics a program relies on, printed so that a run in a host directory (the
 * kernel) and a run under the shim in an image directory can be compared line by line:
 * positions shared by dup, fork and exec, O_APPEND (pwrite included), F_GETFL/F_SETFL,
 * FD_CLOEXEC across exec, lseek at the edges, readv/writev, sendfile, posix_fadvise,
 * truncate, stdio on an inherited descriptor.
 *
 *     descriptors DIR            (runs the cases in DIR)
 *     descriptors --child FD ... (what an exec'd child does with inherited descriptors) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static char self[4096];

static const char *ename(int e)
{
    switch (e) {
    case 0: return "OK";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENXIO: return "ENXIO";
    case ESPIPE: return "ESPIPE";
    case EISDIR: return "EISDIR";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EFBIG: return "EFBIG";
    default: return strerror(e);
    }
}

/* print a call's result: the value, or -1 and the errno name */
#define SHOW(label, expr)                                                       \
    do {                                                                        \
        errno = 0;                                                              \
        long long r_ = (long long)(expr);                                       \
        printf("%-34s %lld %s\n", label, r_, r_ < 0 ? ename(errno) : "");       \
    } while (0)

static char *path(const char *name)
{
    static char buf[4][4096];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static void contents(const char *name)
{
    char buf[256] = {0};
    int fd = open(path(name), O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = '.';
    printf("%-34s %zd \"%s\"\n", name, n, n > 0 ? buf : "");
}

static void run_child(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execv(self, argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("%-34s %d\n", "child exit", WEXITSTATUS(status));
}

static int child(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        int fd = atoi(argv[i]);
        char line[64];
        int n = snprintf(line, sizeof line, "exec'd child on fd %d\n", fd);
        errno = 0;
        ssize_t w = write(fd, line, (size_t)n);
        printf("child write fd %d: %zd %s\n", fd, w, w < 0 ? ename(errno) : "");
    }
    /* stdout may itself be an inherited image file: stdio must reach it */
    printf("child stdio line\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--child"))
        return child(argc, argv);
    if (argc != 2) {
        fprintf(stderr, "usage: descriptors DIR\n");
        return 2;
    }
    dir = argv[1];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    setvbuf(stdout, NULL, _IONBF, 0);

    /* dup shares the position; pwrite does not move it */
    int a = open(path("pos"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    int b = dup(a);
    SHOW("write a", write(a, "hello", 5));
    SHOW("lseek b cur", lseek(b, 0, SEEK_CUR));
    SHOW("pwrite a at 10", pwrite(a, "X", 1, 10));
    SHOW("lseek a cur after pwrite", lseek(a, 0, SEEK_CUR));
    SHOW("write b", write(b, "-dup", 4));

    /* fork: the child's writes move the parent's position */
    pid_t pid = fork();
    if (pid == 0) {
        write(a, "child", 5);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    SHOW("lseek a after child wrote", lseek(a, 0, SEEK_CUR));
    SHOW("write a after child", write(a, "!", 1));

    /* exec: inherited descriptors keep working, close-on-exec ones are gone */
    int c = open(path("cloexec"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char sa[16], sc[16];
    snprintf(sa, sizeof sa, "%d", a);
    snprintf(sc, sizeof sc, "%d", c);
    char *cargv[] = {self, "--child", sa, sc, NULL};
    run_child(cargv);
    SHOW("lseek a after exec'd child", lseek(a, 0, SEEK_CUR));
    SHOW("fcntl c F_GETFD", fcntl(c, F_GETFD));
    SHOW("fcntl a F_GETFD", fcntl(a, F_GETFD));
    SHOW("fcntl a F_SETFD cloexec", fcntl(a, F_SETFD, FD_CLOEXEC));
    SHOW("fcntl b F_GETFD (dup: own flag)", fcntl(b, F_GETFD));
    close(c);

    /* stdout redirected to a file the child inherits */
    int o = open(path("stdout"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int saved = dup(1);
    dup2(o, 1);
    close(o);
    char *sargv[] = {self, "--child", NULL};
    pid = fork();
    if (pid == 0) {
        execv(self, sargv);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
    printf("parent stdio line after the child\n");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);

    /* O_APPEND: every write at the end, pwrite too; F_SETFL turns it on and off */
    int ap = open(path("append"), O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0644);
    SHOW("F_GETFL accmode|append", fcntl(ap, F_GETFL) & (O_ACCMODE | O_APPEND));
    SHOW("append write", write(ap, "one", 3));
    SHOW("lseek 0", lseek(ap, 0, SEEK_SET));
    SHOW("append write after seek", write(ap, "two", 3));
    SHOW("append pwrite at 0", pwrite(ap, "PW", 2, 0));
    SHOW("position after pwrite", lseek(ap, 0, SEEK_CUR));
    SHOW("F_SETFL clear append", fcntl(ap, F_SETFL, 0));
    SHOW("F_GETFL", fcntl(ap, F_GETFL) & (O_ACCMODE | O_APPEND));
    SHOW("lseek 1", lseek(ap, 1, SEEK_SET));
    SHOW("write in place", write(ap, "N", 1));
    close(ap);
    int ro = open(path("append"), O_RDONLY);
    SHOW("F_GETFL read-only", fcntl(ro, F_GETFL) & (O_ACCMODE | O_APPEND));
    SHOW("write on read-only", write(ro, "x", 1));
    close(ro);

    /* lseek at the edges: holes, data, past EOF, negative */
    int h = open(path("holes"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    pwrite(h, "data", 4, 65536);
    SHOW("SEEK_DATA 0", lseek(h, 0, SEEK_DATA));
    SHOW("SEEK_HOLE 65536", lseek(h, 65536, SEEK_HOLE));
    SHOW("SEEK_DATA past EOF", lseek(h, 1 << 20, SEEK_DATA));
    SHOW("SEEK_END -2", lseek(h, -2, SEEK_END));
    SHOW("SEEK_CUR -100000", lseek(h, -100000, SEEK_CUR));
    SHOW("SEEK_SET 1<<40", lseek(h, 1LL << 40, SEEK_SET));
    SHOW("read past EOF", read(h, sa, 4));
    SHOW("whence 7", lseek(h, 0, 7));
    SHOW("ftruncate 3", ftruncate(h, 3));
    SHOW("pread after truncate", pread(h, sa, 8, 0));
    close(h);

    /* vectors, sendfile, fadvise */
    int v = open(path("vec"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
    SHOW("writev", writev(v, iov, 3));
    lseek(v, 1, SEEK_SET);
    char x1[2], x2[8] = {0};
    struct iovec rv[2] = {{x1, 2}, {x2, 8}};
    SHOW("readv", readv(v, rv, 2));
    printf("%-34s %.2s|%s\n", "readv got", x1, x2);
    int s = open(path("sent"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    off_t off = 2;
    SHOW("sendfile from offset 2", sendfile(s, v, &off, 100));
    SHOW("sendfile offset after", off);
    SHOW("sendfile source position", lseek(v, 0, SEEK_CUR));
    SHOW("posix_fadvise WILLNEED", posix_fadvise(v, 0, 0, POSIX_FADV_WILLNEED));
    SHOW("posix_fadvise bad advice", posix_fadvise(v, 0, 0, 99));
    close(s);
    close(v);

    /* stdio: fdopen, fileno, freopen */
    int sfd = open(path("stdio"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    FILE *f = fdopen(sfd, "w+");
    SHOW("fileno(fdopen(fd)) == fd", fileno(f) == sfd);
    fprintf(f, "line %d\nsecond\n", 1);
    fflush(f);
    rewind(f);
    char got[32] = {0};
    SHOW("fgets", fgets(got, sizeof got, f) != NULL);
    printf("%-34s %s", "fgets got", got);
    SHOW("fclose", fclose(f));
    SHOW("fd closed with its FILE", write(sfd, "x", 1));
    FILE *g = fopen(path("first"), "w");
    fputs("to first\n", g);
    g = freopen(path("second"), "a", g);
    SHOW("freopen", g != NULL);
    fputs("to second\n", g);
    SHOW("fclose", fclose(g));

    /* bad descriptors and directories */
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    SHOW("read a directory", read(d, sa, 4));
    close(d);
    close(a);
    SHOW("write on dup after close of a", write(b, "#", 1));
    close(b);
    SHOW("write on closed b", write(b, "x", 1));
    SHOW("open O_CREAT|O_EXCL existing", open(path("pos"), O_CREAT | O_EXCL | O_WRONLY, 0644));
    SHOW("open missing", open(path("missing"), O_RDONLY));
    SHOW("open file as directory", open(path("pos/x"), O_RDONLY));

    contents("pos");
    contents("cloexec");
    contents("stdout");
    contents("append");
    contents("holes");
    contents("vec");
    contents("sent");
    contents("stdio");
    contents("first");
    contents("second");
    return 0;
}
