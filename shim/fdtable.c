/* libpyfalloc's descriptor table. Paths under the mount prefix (PYFALLOC_MOUNT, default
 * /pyfalloc) are files of the image PYFALLOC_IMAGE; everything else takes the C fast path to
 * libc without entering Python.
 *
 * An open image file is backed by a shadow: a real kernel descriptor of a sealed, empty memfd,
 * reopened write-only. Its kernel open file description carries what Linux shares between
 * dup'ed, forked and exec'd holders: the file position, O_APPEND and FD_CLOEXEC. Its name,
 * "pyfalloc:INO:FLAGS:PATH", lets a process that inherits it across exec find the image file
 * again. A program that inherits one without the shim gets EBADF from read and EPERM from
 * write, never a silent empty file. */
#include "interpose.h"
#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

unsigned char virt[MAX_FDS];
char *vpath[MAX_FDS];
unsigned char vacc[MAX_FDS];
char vcwd[4096];
__thread int in_py;

static char prefix[4096] = "/pyfalloc";
static size_t prefix_len = 9;
static int python_started;

/* descriptors of the embedded Python (image, metadata, locks): kept at or above own_base,
 * where a program's dup2(x, 3) or `exec 3>` cannot land on them */
static unsigned char own[MAX_FDS];
static int own_base = 896;

REAL(int, open, const char *, int, ...)
REAL(int, close, int)
REAL(off_t, lseek, int, off_t, int)
REAL(int, fcntl, int, int, ...)
REAL(int, dup3, int, int, int)

int k_open(const char *path, int flags, mode_t mode) { load_open(); return real_open(path, flags, mode); }
int k_close(int fd) { load_close(); return real_close(fd); }
off_t k_lseek(int fd, off_t off, int whence) { load_lseek(); return real_lseek(fd, off, whence); }
int k_fcntl(int fd, int cmd, long arg) { load_fcntl(); return real_fcntl(fd, cmd, arg); }
int k_dup3(int fd, int newfd, int flags) { load_dup3(); return real_dup3(fd, newfd, flags); }

/* The embedded Python sees the host only: its own start touches descriptors 0-2, which may
 * be image files, and must not re-enter itself. */
int is_virt(int fd) { return !in_py && fd >= 0 && fd < MAX_FDS && virt[fd]; }

static int on_image(const char *path)
{
    return path && strncmp(path, prefix, prefix_len) == 0
           && (path[prefix_len] == 0 || path[prefix_len] == '/');
}

/* the path inside the image of a path under the prefix: Python never sees the prefix */
const char *inner(const char *path)
{
    return path && path[prefix_len] ? path + prefix_len : path ? "/" : NULL;
}

/* path with "." and ".." taken out and slashes collapsed, in place: lexical is exact here,
 * as the image has no symbolic links and the prefix is no directory of the host */
static void normalize(char *path)
{
    char *out = path, *in = path;
    while (*in) {
        while (*in == '/')
            in++;
        char *end = in;
        while (*end && *end != '/')
            end++;
        size_t n = (size_t)(end - in);
        if (n == 2 && in[0] == '.' && in[1] == '.') {
            while (out > path && *--out != '/')
                ;
        } else if (n && !(n == 1 && in[0] == '.')) {
            *out++ = '/';
            memmove(out, in, n);
            out += n;
        }
        in = end;
    }
    if (out == path)
        *out++ = '/';
    *out = 0;
}

/* the image path a (dirfd, path) pair names, or NULL when it is not on the image */
const char *image_path(int dirfd, const char *path)
{
    static __thread char joined[8192];
    if (!path || in_py)
        return NULL;
    if (path[0] == '/') {
        if (!on_image(path))
            return NULL;            /* the fast path of every host call: one compare */
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        const char *base = dirfd == AT_FDCWD ? (vcwd[0] ? vcwd : NULL) : is_virt(dirfd) ? vpath[dirfd] : NULL;
        if (!base)
            return NULL;
        snprintf(joined, sizeof joined, "%s/%s", base, path);
    }
    normalize(joined);
    return on_image(joined) ? joined : NULL;
}

/* map a Python answer (result + 1, -errno, or 0 = Python did not start) to libc's way */
long long done(long long r)
{
    if (!python_started && r != 0) {
        python_started = 1;
        if (getenv("PYFALLOC_PYTHONHOME"))
            unsetenv("PYTHONHOME");
    }
    if (r > 0)
        return r - 1;
    if (r == 0) {
        static int told;
        if (!told++)
            fprintf(stderr, "libpyfalloc: the embedded Python did not start "
                            "(run programs through `pyfalloc run`, which sets PYFALLOC_PYTHONHOME)\n");
        errno = ENOSYS;
        return -1;
    }
    errno = (int)-r;
    return -1;
}

void set_virt(int fd, const char *path, int acc)
{
    virt[fd] = 1;
    vacc[fd] = (unsigned char)(acc & O_ACCMODE);
    free(vpath[fd]);
    vpath[fd] = path && *path ? strdup(path) : NULL;
}

void clear_virt(int fd)
{
    virt[fd] = 0;
    free(vpath[fd]);
    vpath[fd] = NULL;
}

int python_ready(void) { return python_started && !in_py; }

/* a process that changed the image leaves its changes durable (exit, not _exit); a Python
 * program's interpreter is finalized by then and did it from its atexit */
__attribute__((destructor)) static void shim_fini(void)
{
    int (*alive)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
    if (python_ready() && alive && alive())
        PY(pyf_exit());
}

/* ---- the embedded Python's own descriptors ---------------------------------------------------- */
int own_fd(int fd) { return fd >= 0 && fd < MAX_FDS && own[fd]; }

void forget_own(int fd)
{
    if (fd >= 0 && fd < MAX_FDS)
        own[fd] = 0;
}

/* a descriptor just opened: when Python opened it, move it up out of the program's way */
int keep_high(int fd)
{
    if (!in_py || fd < 0)
        return fd;
    if (fd < own_base) {
        int hi = k_fcntl(fd, F_DUPFD_CLOEXEC, own_base);
        if (hi >= 0) {
            k_close(fd);
            fd = hi;
        }
    }
    if (fd < MAX_FDS)
        own[fd] = 1;
    return fd;
}

/* ---- shadows ------------------------------------------------------------------------------------ */
#define SHADOW_TAG "pyfalloc:"

/* put a shadow named after (ino, flags, path) on descriptor number fd */
static int make_shadow(int fd, long long ino, int flags, const char *path)
{
    char name[250], proc[64];
    int keep = flags & (O_ACCMODE | O_APPEND);
    if (snprintf(name, sizeof name, SHADOW_TAG "%lld:%d:%s", ino, keep, path) >= (int)sizeof name)
        snprintf(name, sizeof name, SHADOW_TAG "%lld:%d:", ino, keep);     /* no path: no *at base */
    int m = memfd_create(name, MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (m < 0)
        return -1;
    k_fcntl(m, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", m);
    int w = k_open(proc, O_WRONLY | O_CLOEXEC | (flags & (O_APPEND | O_NONBLOCK)), 0);
    int r = k_dup3(w >= 0 ? w : m, fd, flags & O_CLOEXEC);
    int e = errno;
    if (w >= 0)
        k_close(w);
    k_close(m);
    errno = e;
    return r < 0 ? -1 : 0;
}

int open_image(const char *path, int flags, mode_t mode)
{
    /* reserve the lowest free number, as open(2) would give, while Python opens the file */
    int fd = k_open("/dev/null", O_PATH | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (fd >= MAX_FDS) {
        k_close(fd);
        errno = EMFILE;
        return -1;
    }
    long long ino = 0;
    if (PY(pyf_open(inner(path), flags, (int)mode, fd, &ino)) < 0) {
        int e = errno;
        k_close(fd);
        errno = e;
        return -1;
    }
    if (make_shadow(fd, ino, flags, path) < 0) {
        int e = errno;
        PY(pyf_close(fd));
        k_close(fd);
        errno = e;
        return -1;
    }
    set_virt(fd, path, flags);
    std_rebind(fd);
    return fd;
}

/* after exec: the shadows this process inherited become its image files again */
static void adopt_shadows(void)
{
    DIR *(*opendir_)(const char *) = (DIR * (*)(const char *)) dlsym(RTLD_NEXT, "opendir");
    struct dirent *(*readdir_)(DIR *) = (struct dirent * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir");
    int (*closedir_)(DIR *) = (int (*)(DIR *))dlsym(RTLD_NEXT, "closedir");
    DIR *d = opendir_ ? opendir_("/proc/self/fd") : NULL;
    if (!d)
        return;
    struct dirent *e;
    const char *lead = "/memfd:" SHADOW_TAG;
    while ((e = readdir_(d))) {
        char proc[64], link[512];
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd < 0 || fd >= MAX_FDS)
            continue;
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = 0;
        if (strncmp(link, lead, strlen(lead)))
            continue;
        long long ino;
        int flags, used = 0;
        if (sscanf(link + strlen(lead), "%lld:%d:%n", &ino, &flags, &used) < 2 || !used)
            continue;
        char *path = link + strlen(lead) + used;
        char *tail = strstr(path, " (deleted)");
        if (tail && !tail[10])
            *tail = 0;
        set_virt(fd, path, flags);
    }
    closedir_(d);
}

/* ---- fork: the embedded interpreter must be told, as os.fork tells it ------------------------- */
static int fork_gil;
static int fork_held;

static void *py_sym(const char *name) { return dlsym(RTLD_DEFAULT, name); }

static void before_fork(void)
{
    if (!python_started || in_py)
        return;
    /* a thread holding the GIL is Python's own os.fork, which tells the interpreter itself */
    int (*holds)(void) = (int (*)(void))py_sym("PyGILState_Check");
    if (holds && holds())
        return;
    int (*ensure)(void) = (int (*)(void))py_sym("PyGILState_Ensure");
    void (*before)(void) = (void (*)(void))py_sym("PyOS_BeforeFork");
    if (!ensure || !before)
        return;
    fork_gil = ensure();
    before();
    fork_held = 1;
}

static void after_fork(const char *hook)
{
    if (!fork_held)
        return;
    void (*after)(void) = (void (*)(void))py_sym(hook);
    void (*release)(int) = (void (*)(int))py_sym("PyGILState_Release");
    in_py++;                /* the child's store reopens its lock descriptions: kept high */
    if (after)
        after();
    in_py--;
    if (release)
        release(fork_gil);
    fork_held = 0;
}

static void after_fork_parent(void) { after_fork("PyOS_AfterFork_Parent"); }
/* the child's Python re-takes its locks on descriptions of its own (pyfalloc/store/forks.py) */
static void after_fork_child(void) { after_fork("PyOS_AfterFork_Child"); }

__attribute__((constructor)) static void shim_init(void)
{
    const char *m = getenv("PYFALLOC_MOUNT");
    if (m && *m == '/' && strlen(m) < sizeof prefix) {
        strcpy(prefix, m);
        prefix_len = strlen(prefix);
        while (prefix_len > 1 && prefix[prefix_len - 1] == '/')
            prefix[--prefix_len] = 0;
    }
    /* the embedded interpreter finds its standard library through PYTHONHOME; it is put
     * back after Python starts, so children that are other Pythons do not inherit it */
    const char *home = getenv("PYFALLOC_PYTHONHOME");
    if (home && !getenv("PYTHONHOME"))
        setenv("PYTHONHOME", home, 0);
    /* an image working directory handed over by exec (see exec.c) */
    const char *cwd = getenv("PYFALLOC_CWD");
    if (cwd && on_image(cwd) && strlen(cwd) < sizeof vcwd)
        strcpy(vcwd, cwd);
    unsetenv("PYFALLOC_CWD");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        long top = rl.rlim_cur < 4096 ? (long)rl.rlim_cur : 4096;
        own_base = top > 256 ? (int)(top - 128) : (int)(top / 2);
    }
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    adopt_shadows();
    for (int fd = 0; fd <= 2; fd++)
        std_rebind(fd);
}
