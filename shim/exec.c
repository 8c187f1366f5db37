/* exec and posix_spawn: the kernel hands open image files to the new program by itself (their
 * shadows are ordinary descriptors, see fdtable.c); a working directory on the image exists
 * only in this process, so it travels in PYFALLOC_CWD. */
#include "interpose.h"
#include <spawn.h>

extern char **environ;

REAL(int, execve, const char *, char *const[], char *const[])
REAL(int, execvpe, const char *, char *const[], char *const[])
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

static void release(char **e, char *const envp[])
{
    if (e != (char **)envp)
        free(e);
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    load_execve();
    char **e = with_cwd(envp);
    int r = real_execve(path, argv, e);
    release(e, envp);
    return r;
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    load_execvpe();
    char **e = with_cwd(envp);
    int r = real_execvpe(file, argv, e);
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

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    load_posix_spawn();
    char **e = with_cwd(envp);
    int r = real_posix_spawn(pid, path, fa, attr, argv, e);
    release(e, envp);
    return r;
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    load_posix_spawnp();
    char **e = with_cwd(envp);
    int r = real_posix_spawnp(pid, file, fa, attr, argv, e);
    release(e, envp);
    return r;
}
