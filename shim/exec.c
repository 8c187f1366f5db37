/* exec and posix_spawn: the kernel hands open image files to the new program by itself (their
 * shadows are ordinary descriptors, see fdtable.c); a working directory on the image exists
 * only in this process, so it travels in PYFALLOC_CWD.
 *
 * A program stored on the image cannot be read by the kernel, so it runs from a copy: a
 * script ("#!") becomes its interpreter's argument list, as binfmt_script builds it (the
 * interpreter, run under the shim, reads the script from the image), and any other file
 * is copied into a memfd that the kernel executes (binfmt_elf, or ENOEXEC as for the
 * file). The checks are the kernel's: a regular file with execute permission for the
 * effective ids (EACCES). Set-user-ID and set-group-ID bits give no ids, as on a nosuid
 * mount; /proc/self/exe names the memfd. A symbolic link out of the image runs the host's
 * program it leads to. */
#include "interpose.h"
#include <limits.h>
#include <spawn.h>
#include <sys/mman.h>

extern char **environ;

REAL(int, execve, const char *, char *const[], char *const[])
REAL(int, execvpe, const char *, char *const[], char *const[])
REAL(int, fexecve, int, char *const[], char *const[])
REAL(int, execveat, int, const char *, char *const[], char *const[], int)
REAL(int, posix_spawn, pid_t *, const char *, const posix_spawn_file_actions_t *,
     const posix_spawnattr_t *, char *const[], char *const[])
REAL(int, posix_spawnp, pid_t *, const char *, const posix_spawn_file_actions_t *,
     const posix_spawnattr_t *, char *const[], char *const[])

/* envp with PYFALLOC_CWD set to the image working directory; envp itself when there is none */
static char **with_cwd(char *const envp[])
{
    if (!vcwd[0] || !envp)
        return (char **)envp;
    size_t n = 0;
    while (envp[n])
        n++;
    char **e = malloc((n + 2) * sizeof *e);
    static char var[sizeof vcwd + 16];
    if (!e)
        return (char **)envp;
    snprintf(var, sizeof var, "PYFALLOC_CWD=%s", vcwd);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(envp[i], "PYFALLOC_CWD=", 13))
            e[k++] = envp[i];
    e[k++] = var;
    e[k] = NULL;
    return e;
}

/* The image working directory also stays in this process's environment, for the execs
 * glibc makes inside itself (system, popen, wordexp), which reach no interposed exec: their
 * shell must start in it too. Not from a child sharing its parent's memory (and environ). */
void publish_cwd(void)
{
    if (!own_process())
        return;
    if (vcwd[0])
        setenv("PYFALLOC_CWD", vcwd, 1);
    else if (getenv("PYFALLOC_CWD"))
        unsetenv("PYFALLOC_CWD");
}

static void release(char **e, char *const envp[])
{
    if (e != (char **)envp)
        free(e);
}

enum { SCRIPT_HEAD = 256, SCRIPT_DEPTH = 5 };      /* binfmt_script's buffer; scripts nested, as exec_binprm allows */

/* What the kernel is given to run a program: a host path and the arguments; fd >= 0 is a
 * memfd holding an image program's copy; made, the argument lists built for scripts (each
 * with its interpreter's name and argument inside it: a later level points into them). */
struct launch {
    char path[64 + PATH_MAX];
    char *const *argv;
    char **made[SCRIPT_DEPTH];
    int nmade;
    int fd;
};

static void launch_done(struct launch *l)
{
    int e = errno;
    if (l->fd >= 0)
        close(l->fd);
    while (l->nmade)
        free(l->made[--l->nmade]);
    errno = e;
}

/* the entries of argv */
static size_t count(char *const argv[])
{
    size_t n = 0;
    while (argv && argv[n])
        n++;
    return n;
}

/* into out (room for nhead + count(argv) + 1): head, then argv without its argv[0] (the
 * list an interpreter or a shell is given for a program) */
static void spliced(char **out, char *const head[], size_t nhead, char *const argv[])
{
    size_t k = 0;
    for (size_t i = 0; i < nhead; i++)
        out[k++] = head[i];
    for (size_t i = 1, n = count(argv); i < n; i++)
        out[k++] = argv[i];
    out[k] = NULL;
}

/* A PATH search's next candidate for file, as execvp makes them (an empty entry is the
 * working directory; no PATH is "/bin:/usr/bin"): 1 with full set and *cursor moved on, 0
 * after the last. *cursor starts NULL. A candidate too long for full is skipped. */
static const char path_end[1];

static int next_candidate(const char **cursor, const char *file, char *full, size_t size)
{
    for (;;) {
        const char *p = *cursor ? *cursor : getenv("PATH") ? getenv("PATH") : "/bin:/usr/bin";
        if (p == path_end)
            return 0;
        const char *end = strchrnul(p, ':');
        int n = end == p ? snprintf(full, size, "%s", file)
                         : snprintf(full, size, "%.*s/%s", (int)(end - p), p, file);
        *cursor = *end ? end + 1 : path_end;
        if (n > 0 && (size_t)n < size)
            return 1;
    }
}

/* "#!interp [arg]" as binfmt_script splits it: 1 with the interpreter (and the argument, or
 * NULL) cut out of head, 0 for no "#!", -1 for a line with no interpreter (ENOEXEC) */
static int script_line(char *head, ssize_t n, char **interp, char **arg)
{
    if (n < 2 || head[0] != '#' || head[1] != '!')
        return 0;
    head[n < SCRIPT_HEAD ? n : SCRIPT_HEAD - 1] = 0;
    char *nl = strchr(head, '\n');
    if (nl)
        *nl = 0;
    char *p = head + 2;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return -1;
    *interp = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    *arg = NULL;
    if (*p) {
        *p++ = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = 0;
        *arg = *p ? p : NULL;
    }
    return 1;
}

/* the program at image path ip (path as the caller named it): its launch, or -1 and errno */
static int prepare(const char *path, char *const argv[], struct launch *l, int depth);

static int prepare_image(const char *path, const char *image, char *const argv[], struct launch *l, int depth)
{
    char ip[PATH_MAX + 64];             /* image_path's buffer is the next call's */
    snprintf(ip, sizeof ip, "%s", image);
    char inside[PATH_MAX];
    if (PY(pyf_realpath(inner(ip), inside, sizeof inside)) < 0) {
        const char *host = left_image();
        if (!host)
            return -1;
        char there[PATH_MAX];           /* a link led out of the image: the host's program */
        snprintf(there, sizeof there, "%s", host);
        return prepare(there, argv, l, depth);
    }
    struct stat st;
    if (image_stat(-1, ip, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode))
        return failed_errno(EACCES);
    if (faccessat(AT_FDCWD, ip, X_OK, AT_EACCESS) < 0)
        return -1;
    int fd = open(ip, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char head[SCRIPT_HEAD], *interp, *arg;
    ssize_t n = pread(fd, head, sizeof head, 0);
    int script = n < 0 ? -1 : script_line(head, n, &interp, &arg);
    if (n < 0 || script < 0) {
        int e = n < 0 ? errno : ENOEXEC;
        close(fd);
        return failed_errno(e);
    }
    if (script) {
        close(fd);
        if (depth >= SCRIPT_DEPTH)
            return failed_errno(ELOOP);
        size_t argc = count(argv), ni = strlen(interp) + 1, na = arg ? strlen(arg) + 1 : 0;
        char **made = malloc((argc + 4) * sizeof *made + ni + na);
        if (!made)
            return failed_errno(ENOMEM);
        char *names = (char *)(made + argc + 4);     /* head is this frame's: copied */
        memcpy(names, interp, ni);
        if (arg)
            memcpy(names + ni, arg, na);
        char *head[] = {names, arg ? names + ni : (char *)path, (char *)path};
        spliced(made, head, arg ? 3 : 2, argv);     /* the name as given, argv[0] dropped */
        l->made[l->nmade++] = made;
        return prepare(names, made, l, depth + 1);
    }
    const char *base = strrchr(ip, '/');
    int m = memfd_create(base ? base + 1 : ip, MFD_CLOEXEC);
    if (m < 0) {
        close(fd);
        return -1;
    }
    char buf[1 << 16];
    off_t off = 0;
    for (;;) {
        ssize_t got = pread(fd, buf, sizeof buf, off);
        if (got <= 0) {
            int e = errno;
            close(fd);
            if (got < 0) {
                close(m);
                return failed_errno(e);
            }
            break;
        }
        for (ssize_t put = 0; put < got;) {
            ssize_t w = write(m, buf + put, (size_t)(got - put));
            if (w < 0) {
                int e = errno;
                close(fd);
                close(m);
                return failed_errno(e);
            }
            put += w;
        }
        off += got;
    }
    l->fd = m;
    l->argv = argv;
    snprintf(l->path, sizeof l->path, "/proc/self/fd/%d", m);
    return 0;
}

static int prepare(const char *path, char *const argv[], struct launch *l, int depth)
{
    const char *ip = HERE(path);
    if (ip)
        return prepare_image(path, ip, argv, l, depth);
    if (strlen(alias(path)) >= sizeof l->path)
        return failed_errno(ENAMETOOLONG);
    snprintf(l->path, sizeof l->path, "%s", alias(path));
    l->argv = argv;
    return 0;
}

static int launch_start(const char *path, char *const argv[], struct launch *l)
{
    *l = (struct launch){.fd = -1};
    if (prepare(path, argv, l, 0) == 0)
        return 0;
    launch_done(l);
    return -1;
}

/* vfork is fork here. A child of vfork runs in its parent's memory until it execs, and an
 * image program's exec needs the Python half (the file's checks and bytes), which that child
 * must not enter: the parent's interpreter, mid-call. As a process of its own it gives the
 * kernel's answers (ENOENT as a PATH search goes on, EACCES, ENOEXEC), which a stand-in
 * started from the shared memory could not. The cost is fork's copy of the page tables. */
pid_t vfork(void) { return fork(); }
pid_t __vfork(void) { return fork(); }

/* A child that still shares its parent's memory (clone with CLONE_VM) cannot enter Python: it execs a
 * shell, a process of its own under the shim, whose exec builtin runs the image program by
 * its name (argv[0] becomes that name, as a shell gives it; a file without "#!" runs as a
 * shell script, and a refusal is the shell's message and status 126 or 127, not an errno). */
static int exec_by_shell(const char *path, char *const argv[], char *const envp[])
{
    char *by[count(argv) + 5];
    char *head[] = {(char *)"sh", (char *)"-c", (char *)"exec \"$0\" \"$@\"", (char *)path};
    spliced(by, head, 4, argv);
    load_execve();
    char **e = with_cwd(envp);
    real_execve("/bin/sh", by, e);
    release(e, envp);
    return -1;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    if (!own_process() && HERE(path))
        return exec_by_shell(path, argv, envp);
    struct launch l;
    if (launch_start(path, argv, &l) < 0)
        return -1;
    load_execve();
    char **e = with_cwd(envp);
    int r = real_execve(l.path, l.argv, e);
    release(e, envp);
    launch_done(&l);
    return r;
}

/* a PATH search that meets the image: execvpe's rules (an empty entry is the working
 * directory; EACCES is kept while the search goes on; ENOEXEC runs the file by /bin/sh) */
static int exec_search(const char *file, char *const argv[], char *const envp[])
{
    int denied = 0;
    char full[PATH_MAX];
    for (const char *cursor = NULL; next_candidate(&cursor, file, full, sizeof full);) {
        execve(full, argv, envp);
        if (errno == ENOEXEC) {
            char *sh[count(argv) + 3];
            char *head[] = {(char *)"/bin/sh", full};
            spliced(sh, head, 2, argv);
            execve("/bin/sh", sh, envp);
            return -1;
        }
        if (errno == EACCES)
            denied = 1;
        else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV && errno != ETIMEDOUT)
            return -1;
    }
    return failed_errno(denied ? EACCES : ENOENT);
}

/* whether a PATH search for file may meet the image: an entry under the prefix, or a
 * relative one (empty included) while the working directory is the image's */
static int search_meets_image(const char *file)
{
    if (!*file || strchr(file, '/'))
        return 0;
    char full[PATH_MAX];
    for (const char *cursor = NULL; next_candidate(&cursor, file, full, sizeof full);)
        if (HERE(full) || (full[0] != '/' && vcwd[0]))
            return 1;
    return 0;
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    if (strchr(file, '/'))
        return execve(file, argv, envp);
    if (search_meets_image(file))
        return exec_search(file, argv, envp);
    load_execvpe();
    char **e = with_cwd(envp);
    int r = real_execvpe(file, argv, e);
    release(e, envp);
    return r;
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
    if (is_virt(fd) && virt_path(fd))
        return execve(virt_path(fd), argv, envp);
    load_fexecve();
    return real_fexecve(fd, argv, envp);
}

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    if (!*path && (flags & AT_EMPTY_PATH) && is_virt(dirfd))
        return fexecve(dirfd, argv, envp);
    const char *ip = image_path(dirfd, path);
    if (ip) {
        char full[PATH_MAX + 64];
        snprintf(full, sizeof full, "%s", ip);
        return execve(full, argv, envp);
    }
    load_execveat();
    char **e = with_cwd(envp);
    int r = real_execveat(alias_dir(dirfd, path), alias(path), argv, e, flags);
    release(e, envp);
    return r;
}

int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/* the execl family: the argument list as an argv array */
#define ARGV_FROM_LIST(first, ap, argv, after)                                  \
    do {                                                                        \
        size_t n_ = 1;                                                          \
        va_list cp_;                                                            \
        va_copy(cp_, ap);                                                       \
        while (va_arg(cp_, char *))                                             \
            n_++;                                                               \
        va_end(cp_);                                                            \
        argv = malloc((n_ + 1) * sizeof *argv);                                 \
        if (!argv) {                                                            \
            errno = ENOMEM;                                                     \
            return -1;                                                          \
        }                                                                       \
        argv[0] = (char *)first;                                                \
        for (size_t i_ = 1; i_ <= n_; i_++)                                     \
            argv[i_] = va_arg(ap, char *);                                      \
        after;                                                                  \
    } while (0)

int execl(const char *path, const char *arg, ...)
{
    char **argv;
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_LIST(arg, ap, argv, va_end(ap));
    int r = execve(path, argv, environ);
    free(argv);
    return r;
}

int execlp(const char *file, const char *arg, ...)
{
    char **argv;
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_LIST(arg, ap, argv, va_end(ap));
    int r = execvpe(file, argv, environ);
    free(argv);
    return r;
}

int execle(const char *path, const char *arg, ...)
{
    char **argv;
    va_list ap;
    va_start(ap, arg);
    ARGV_FROM_LIST(arg, ap, argv, (void)0);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    int r = execve(path, argv, envp);
    free(argv);
    return r;
}

/* The child reaches an image program's memfd by /proc/self/fd/N: it starts with a copy of
 * the parent's descriptors, close-on-exec ones included until its exec. */
int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    struct launch l;
    if (launch_start(path, argv, &l) < 0)
        return errno;
    load_posix_spawn();
    char **e = with_cwd(envp);
    int r = real_posix_spawn(pid, l.path, fa, attr, l.argv, e);
    release(e, envp);
    launch_done(&l);
    return r;
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (strchr(file, '/') || search_meets_image(file)) {
        const char *found = strchr(file, '/') ? file : NULL;
        char full[PATH_MAX];
        for (const char *cursor = NULL; !found && next_candidate(&cursor, file, full, sizeof full);)
            if (faccessat(AT_FDCWD, full, X_OK, AT_EACCESS) == 0)
                found = full;           /* the first entry that holds the file */
        return found ? posix_spawn(pid, found, fa, attr, argv, envp) : ENOENT;
    }
    load_posix_spawnp();
    char **e = with_cwd(envp);
    int r = real_posix_spawnp(pid, file, fa, attr, argv, e);
    release(e, envp);
    return r;
}
