/* libpyfalloc's descriptor table. Paths under the mount prefix (PYFALLOC_MOUNT, default
 * /pyfalloc) are files of the image PYFALLOC_IMAGE; everything else takes the C fast path to
 * libc without entering Python.
 *
 * An open image file is backed by a shadow: a real kernel descriptor whose open file
 * description carries what Linux shares between dup'ed, forked and exec'd holders (the file
 * position, O_APPEND, FD_CLOEXEC) and the advisory locks (see make_shadow). A process that
 * inherits one across exec finds its inode from the shadow's name. */
#include "interpose.h"
#include <limits.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>

unsigned char virt[MAX_FDS];
char *vpath[MAX_FDS];
unsigned char vacc[MAX_FDS];
unsigned char vdirect[MAX_FDS];
char vcwd[4096];
__thread int in_py;

static char prefix[4096] = "/pyfalloc";
static size_t prefix_len = 9;
static int python_started;
/* The first image call starts the embedded Python, with the environment the start needs set
 * and put back around it: threads that make theirs at once wait until it is done (a second
 * thread went into an interpreter started without the package's path, and setenv is not
 * safe against another thread's getenv or setenv). Taken around a fork too, so no child
 * inherits it held. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int holding_start;

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

/* the process these tables belong to: a child of vfork (Python's subprocess, posix_spawn)
 * runs in its parent's memory until it execs, and must neither enter the parent's Python
 * nor change its tables; it sees shadows as the kernel's files, which they are. A child
 * made without the fork handlers (a fork by system call number, as stress-ng makes some)
 * has memory of its own and takes the tables over; kcmp tells the two apart. */
static pid_t owner;
int own_process(void)
{
    pid_t me = getpid();
    if (me == owner)
        return 1;
    if (syscall(SYS_kcmp, (long)me, (long)getppid(), 1L /* KCMP_VM */, 0L, 0L) == 0)
        return 0;
    owner = me;
    return 1;
}

/* A program that is itself Python checks and opens its standard streams while its
 * interpreter starts, and Python cannot be started inside that start: until it is ready,
 * image descriptors are the kernel's shadows and image paths the host's. An interpreter
 * the shim is starting itself is another matter: its other threads wait for it in cffi. */
static int shim_starts_python;
static int (*py_initialized)(void);
static void *(*py_interpreters)(void);

static void look_up_python(void)
{
    static int looked;
    if (!looked) {
        py_initialized = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
        py_interpreters = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyInterpreterState_Head");
        looked = 1;
    }
}

static int program_python_starting(void)
{
    if (python_started)
        return 0;
    look_up_python();
    if (!py_initialized || !py_interpreters || py_initialized() || !py_interpreters())
        return 0;
    /* an interpreter is starting: the program's, unless the shim started it. Read after the
     * interpreter was seen: a thread that starts it sets the flag first, so another thread
     * of a C program never takes the shim's start for the program's (its image paths would
     * have gone to the host) */
    return !__atomic_load_n(&shim_starts_python, __ATOMIC_ACQUIRE);
}

/* The embedded Python sees the host only: its own start touches descriptors 0-2, which may
 * be image files, and must not re-enter itself. */
int is_virt(int fd)
{
    return !in_py && fd >= 0 && fd < MAX_FDS && virt[fd] && own_process() && !program_python_starting();
}

static int on_image(const char *path)
{
    return path && strncmp(path, prefix, prefix_len) == 0
           && (path[prefix_len] == 0 || path[prefix_len] == '/');
}

/* the path inside the image of a path under the prefix: Python never sees the prefix */
const char *mount_prefix(void) { return prefix; }

const char *inner(const char *path)
{
    return path && path[prefix_len] ? path + prefix_len : path ? "/" : NULL;
}

/* inner's reverse: the host path (under the prefix) of a path inside the image, into buf;
 * NULL and ENAMETOOLONG when it does not fit */
const char *outer(const char *inside, char *buf, size_t size)
{
    if ((size_t)snprintf(buf, size, "%s%s", prefix, strcmp(inside, "/") ? inside : "") >= size) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return buf;
}

/* start's path with slashes collapsed and "." dropped, in place. ".." is taken out with the
 * name before it (lexical), or with keep, kept: then 0 when one would climb above start. */
static int tidy(char *start, int keep)
{
    char *out = start, *in = start;
    int depth = 0;
    while (*in) {
        while (*in == '/')
            in++;
        char *end = in;
        while (*end && *end != '/')
            end++;
        size_t n = (size_t)(end - in);
        int dotdot = n == 2 && in[0] == '.' && in[1] == '.';
        if (dotdot && !keep) {
            while (out > start && *--out != '/')
                ;
        } else if (n && !(n == 1 && in[0] == '.')) {
            depth += dotdot ? -1 : 1;
            if (depth < 0)
                return 0;
            *out++ = '/';
            memmove(out, in, n);
            out += n;
        }
        in = end;
    }
    if (out == start && !keep)
        *out++ = '/';
    *out = 0;
    return 1;
}

/* the lexical path, which decides whether a path is the image's (the prefix is no
 * directory of the host) */
static void normalize(char *path) { tidy(path, 0); }

/* A path that goes through the image and leaves it by ".." names a host file, as it would on
 * Linux: /pyfalloc/d/../../etc/x is the host's /etc/x, and so is ../../etc/x from an image
 * working directory. image_path notes such a path; the wrapper's host call then takes
 * alias(path) and alias_dir(dirfd, path), the absolute host path. Two notes per thread:
 * rename and link name two paths. */
static __thread struct escape { const char *in; char orig[512]; char out[8192]; } esc[2];
static __thread int nesc, esc_next;

static void note_escape(const char *in, const char *out)
{
    struct escape *e = &esc[esc_next];
    esc_next = (esc_next + 1) % 2;
    if (nesc < 2)
        nesc++;
    e->in = in;
    snprintf(e->orig, sizeof e->orig, "%s", in);
    snprintf(e->out, sizeof e->out, "%s", out);
}

static struct escape *escape_of(const char *path)
{
    for (int i = 0; i < nesc; i++)
        if (esc[i].in == path && !strncmp(esc[i].orig, path, sizeof esc[i].orig - 1))
            return &esc[i];
    return NULL;
}

const char *alias(const char *path)
{
    struct escape *e = nesc ? escape_of(path) : NULL;
    return e ? e->out : path;
}

int alias_dir(int dirfd, const char *path)
{
    return nesc && escape_of(path) ? AT_FDCWD : dirfd;
}

/* A path of PATH_MAX bytes or more on the image: an image path with a name longer than the
 * image allows, so whichever call takes it answers ENAMETOOLONG, as Linux does for the path
 * (never a path cut short, which could name another file). */
static const char *too_long(void)
{
    static char name[4200];
    if (!name[0]) {
        int n = snprintf(name, sizeof name, "%s/", prefix);
        memset(name + n, 'x', 300);
        name[n + 300] = 0;
    }
    return name;
}

/* Descriptors of the host directory that holds the mount prefix ("/" for /pyfalloc): a
 * program that walks a path one component at a time from there (openat of "/" with O_PATH,
 * then fstatat and openat of each name, as rsync does against symbolic-link races) must
 * find the image under it. */
static unsigned char above[MAX_FDS];

/* a descriptor the shim keeps something about (an image file, one of its own, a directory
 * above the prefix, a standard stream it may rebind): the calls that change its tables need
 * to know whether this is a vfork child only for these, and the others skip the getpid */
int fd_noted(int fd) { return fd >= 0 && (fd <= 2 || (fd < MAX_FDS && (virt[fd] || own[fd] || above[fd]))); }
static char prefix_parent[4096] = "/";

/* A host working directory that holds the prefix ("/" under the default /pyfalloc, or the
 * directory of a relative --mount): relative names are joined to it, so "mnt/f" reaches
 * the image as "/abs/mnt/f" does. */
static char host_cwd[4096];
static int host_cwd_above;

void note_host_cwd(void)
{
    host_cwd_above = 0;
    long n = syscall(SYS_getcwd, host_cwd, sizeof host_cwd);
    if (n <= 0 || host_cwd[0] != '/')
        return;
    size_t len = strlen(host_cwd);
    host_cwd_above = len == 1 || (len < prefix_len && !strncmp(prefix, host_cwd, len) && prefix[len] == '/');
}

static void note_above(int fd, const char *path)
{
    if (fd < 0 || fd >= MAX_FDS || in_py)
        return;
    char p[4096];
    above[fd] = 0;
    if (path && path[0] == '/' && strlen(path) < sizeof p) {
        memcpy(p, path, strlen(path) + 1);
        normalize(p);
        above[fd] = !strcmp(p, prefix_parent);
    }
}

void opened_host(int fd, int dirfd, const char *path)
{
    if (fd >= 0 && fd < MAX_FDS && (path[0] == '/' || dirfd == AT_FDCWD))
        note_above(fd, path);
    else if (fd >= 0 && fd < MAX_FDS)
        above[fd] = 0;
}

void copied_fd(int oldfd, int newfd)
{
    if (newfd >= 0 && newfd < MAX_FDS)
        above[newfd] = oldfd >= 0 && oldfd < MAX_FDS && above[oldfd];
}

/* A program that is itself Python looks for the PYTHONPATH directories while its
 * interpreter starts, when image paths are still the host's: one on the image is found
 * missing and its import finder cached as None, which would hide it for good. The first
 * path the program names once started (the import system's next look at sys.path) drops
 * those entries, so the next look finds the directory on the image. */
static int importer_fix_pending;

/* run code in the interpreter of a program that is itself Python, under its GIL, in a
 * namespace of its own (the program's __main__ gains no names) */
static void run_in_program_python(const char *code)
{
    int (*ensure)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    void (*release)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "PyGILState_Release");
    int (*run)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
    if (!ensure || !release || !run)
        return;
    int g = ensure();
    in_py++;
    run(code);
    in_py--;
    release(g);
}

static void fix_importer_cache(void)
{
    look_up_python();
    if (!py_initialized || shim_starts_python) {
        importer_fix_pending = 0;           /* no Python program here */
        return;
    }
    if (!py_initialized())
        return;                             /* its start still runs */
    importer_fix_pending = 0;
    char code[4096 + 512];
    snprintf(code, sizeof code,
             "exec('import sys\\n'\n"
             "     'c = sys.path_importer_cache\\n'\n"
             "     'for k in [k for k, v in c.items() if v is None and (k == m or k.startswith(m + \"/\"))]:\\n'\n"
             "     '    del c[k]\\n', {'m': '%s'})\n", prefix);
    run_in_program_python(code);
}

/* Where a name relative to image descriptor fd is looked up: the directory's path now
 * (renamed since it was opened, the new one), asked of Python and kept while the log stays
 * where it was read. NULL for a descriptor that is no directory: the kernel answers ENOTDIR
 * from its shadow, a regular file, as it does for any file's descriptor. A removed
 * directory holds no names: the lookup goes to a host path that does not exist (ENOENT),
 * never to a directory that took the old name since. */
static const char *shadow_dir(void);
static unsigned char vkind[MAX_FDS];                    /* 0 unknown, 1 directory, 2 other */
static unsigned long long vseen[MAX_FDS][2];
static pthread_mutex_t vbase_lock = PTHREAD_MUTEX_INITIALIZER;

static void forget_base(int fd) { vkind[fd] = 0; }

static const char *dir_base(int fd, const char *path, char *out, size_t size)
{
    if (vkind[fd] == 2)
        return NULL;
    if (!own_process())                 /* a vfork child: the parent's Python is not its own */
        return vpath[fd];
    unsigned long long pos[2];
    int known = log_position(pos);
    pthread_mutex_lock(&vbase_lock);
    int kept = vkind[fd] == 1 && known && vseen[fd][0] == pos[0] && vseen[fd][1] == pos[1] && vpath[fd];
    if (kept)
        snprintf(out, size, "%s", vpath[fd]);
    pthread_mutex_unlock(&vbase_lock);
    if (kept)
        return out;
    char inside[4096];
    if (PY(pyf_dir_path(fd, inside, sizeof inside)) < 0) {
        if (errno == ENOTDIR) {
            vkind[fd] = 2;
            return NULL;
        }
        if (errno == ENOENT && shadow_dir()) {
            char gone[8192];
            snprintf(gone, sizeof gone, "%s/.removed/%s", shadow_dir(), path);
            note_escape(path, gone);
        }
        return NULL;
    }
    if (!outer(inside, out, size))
        return too_long();
    pthread_mutex_lock(&vbase_lock);
    if (!vpath[fd] || strcmp(vpath[fd], out)) {
        free(vpath[fd]);
        vpath[fd] = strdup(out);
    }
    vkind[fd] = 1;
    vseen[fd][0] = known ? pos[0] : ~0ULL;
    vseen[fd][1] = known ? pos[1] : ~0ULL;
    pthread_mutex_unlock(&vbase_lock);
    return out;
}

/* A path under the prefix with its ".." kept, for Python to walk: after a symbolic link,
 * ".." is the parent of where the link led, not of the link. 0 (path unusable) when a ".."
 * would climb to the prefix or above, where the lexical answer stands. */
static int keep_dotdot(char *path) { return on_image(path) && tidy(path + prefix_len, 1); }

/* the image path a (dirfd, path) pair names, or NULL when it is not on the image */
const char *image_path(int dirfd, const char *path)
{
    static __thread char joined[8192];
    if (importer_fix_pending && !in_py)
        fix_importer_cache();
    if (!path || in_py)
        return NULL;
    if (nesc)
        for (int i = 0; i < nesc; i++)
            if (esc[i].in == path)
                esc[i].in = NULL;   /* a note of an earlier call with this pointer */
    if (path[0] == '/') {
        if (!on_image(path))
            return NULL;            /* the fast path of every host call: one compare */
        if (strlen(path) >= PATH_MAX)
            return too_long();
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        if (!*path)
            return NULL;            /* "" names nothing (AT_EMPTY_PATH is the caller's): ENOENT */
        static __thread char dir[8192];
        const char *base = dirfd == AT_FDCWD ? (vcwd[0] ? vcwd : host_cwd_above ? host_cwd : NULL)
                           : is_virt(dirfd) ? dir_base(dirfd, path, dir, sizeof dir)
                           : dirfd >= 0 && dirfd < MAX_FDS && above[dirfd] ? prefix_parent : NULL;
        if (!base)
            return NULL;
        if (strlen(path) >= PATH_MAX || strlen(base) + 1 + strlen(path) >= sizeof joined)
            return too_long();
        size_t nb = strlen(base);
        memcpy(joined, base, nb);
        joined[nb] = '/';
        memcpy(joined + nb + 1, path, strlen(path) + 1);
    }
    static __thread char raw[8192];
    int dots = strstr(joined, "/..") != NULL;
    if (dots)
        memcpy(raw, joined, strlen(joined) + 1);
    normalize(joined);
    if (dots && on_image(joined) && keep_dotdot(raw))
        memcpy(joined, raw, strlen(raw) + 1);
    size_t n = strlen(path), nj = strlen(joined);
    if (n && path[n - 1] == '/' && nj > 1 && nj + 1 < sizeof joined)
        memcpy(joined + nj, "/", 2);    /* "name/" must name a directory: Python checks it */
    if (on_image(joined))
        return program_python_starting() ? NULL : joined;
    if (path[0] != '/' && dirfd == AT_FDCWD && !vcwd[0])
        return NULL;                /* a host name: the kernel resolves it as given */
    note_escape(path, joined);
    return NULL;
}

/* The interpreter's start installs its own SIGINT handler (Ctrl-C would raise inside Python
 * and the program run on) and may ignore SIGPIPE and SIGXFSZ: the program keeps its own. */
static const int kept_signals[] = {SIGINT, SIGPIPE, SIGXFSZ};
static struct sigaction program_sig[3];
static int signals_saved;
static char *program_pythonpath;
static int pythonpath_swapped;
extern char **environ;
static char **environ_before;       /* the environment's array before the start's setenv */
static size_t environ_count;
static int home_set;

/* A program that is itself Python keeps its own start and path; cffi imports its backend
 * before the init code runs. The package's directories serve the package's own modules to
 * it (a finder after the program's, for those names only), not to the program: appended to
 * its path, they lent it every module of the package's environment (a fresh venv's
 * ensurepip found pip there and installed none). */
static void with_package_path(const char *ours)
{
    if (ours)
        run_in_program_python(
            "exec('import os, sys\\n'\n"
            "     'from importlib.machinery import PathFinder\\n'\n"
            "     'dirs = [p for p in os.environ.get(\"PYFALLOC_PYTHONPATH\", \"\").split(os.pathsep) if p]\\n'\n"
            "     'names = {\"pyfalloc\", \"cffi\", \"_cffi_backend\", \"nbd\", \"libnbdmod\", \"rados\", \"rbd\"}\\n'\n"
            "     'class PyfallocModules:\\n'\n"
            "     '    @staticmethod\\n'\n"
            "     '    def find_spec(name, path=None, target=None):\\n'\n"
            "     '        return PathFinder.find_spec(name, dirs) if path is None and name in names else None\\n'\n"
            "     'sys.meta_path.append(PyfallocModules)\\n', {})\n");
}

/* A user who cannot read the Python the package was installed with (a program that
 * switched to another user, and the interpreter under root's home) would die in the
 * interpreter's start: the image is then unavailable to the process, and calls say so. */
static int unusable_errno;

int python_unusable(void) { return unusable_errno; }

static void check_python_readable(void)
{
    const char *home = env("PYFALLOC_PYTHONHOME"), *path = env("PYFALLOC_PYTHONPATH");
    char first[4096];
    size_t n = path ? strcspn(path, ":") : 0;
    snprintf(first, sizeof first, "%.*s", (int)n, path ? path : "");
    if (home && access(home, R_OK | X_OK) < 0)
        unusable_errno = errno;             /* the interpreter's start would abort */
    else if (n && access(first, R_OK | X_OK) < 0 && errno == EACCES)
        unusable_errno = EACCES;            /* a missing package fails the start gently */
}

/* Where a symbolic link took the look-up of the call under way out of the image (Python
 * answers EXDEV after noting it): the wrappers that follow links go on with the host's
 * call there, as the kernel would. */
static __thread char host_left[4096];
static __thread int host_left_set;

void pyf_leaves_image(const char *host)
{
    snprintf(host_left, sizeof host_left, "%s", host);
    host_left_set = 1;
}

const char *left_image(void)
{
    if (!host_left_set || errno != EXDEV)
        return NULL;
    host_left_set = 0;
    return host_left;
}

/* Threads of a C program take turns into Python on a mutex of the shim's own before the
 * interpreter's lock: the interpreter hands its lock from thread to thread at each release
 * when others wait (a context switch per call), where a mutex lets the thread that just
 * left take it again while the others sleep. Not in a Python program, whose threads may
 * call in holding the interpreter's lock; recursive for a signal handler's call. */
static pthread_mutex_t py_turn = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static __thread int turn_held;

static void take_turn(void)
{
    if (!in_py && !turn_held && __atomic_load_n(&shim_starts_python, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&py_turn);
        turn_held = 1;
    }
}

static void end_turn(void)
{
    if (turn_held && !in_py) {
        turn_held = 0;
        pthread_mutex_unlock(&py_turn);
    }
}

void before_python(void)
{
    host_left_set = 0;
    take_turn();
    if (__atomic_load_n(&python_started, __ATOMIC_ACQUIRE) || unusable_errno)
        return;
    if (!in_py && !holding_start) {
        pthread_mutex_lock(&start_lock);
        holding_start = 1;
    }
    if (python_started || signals_saved)
        return;
    check_python_readable();
    if (unusable_errno)
        return;
    look_up_python();
    if (py_initialized && py_interpreters && !py_initialized() && !py_interpreters())
        __atomic_store_n(&shim_starts_python, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        sigaction(kept_signals[i], NULL, &program_sig[i]);
    signals_saved = 1;
    const char *ours = env("PYFALLOC_PYTHONPATH");
    if (py_initialized && py_initialized()) {
        with_package_path(ours);
        return;
    }
    /* An interpreter we start ourselves skips the site step (python -S): it would run every
     * .pth of the base installation, which costs tens of ms and serves nothing here; the
     * init code adds the package's own directories. */
    int *no_site = (int *)dlsym(RTLD_DEFAULT, "Py_NoSiteFlag");
    if (!py_initialized || !no_site || !ours)
        return;
    *no_site = 1;
    /* the directories of the package and its dependencies, and the standard library of the
     * Python it was installed with, for this start only: the program's own PYTHONPATH and
     * PYTHONHOME are put back in done(), so children that are other Pythons keep theirs */
    const char *theirs = env("PYTHONPATH");
    program_pythonpath = theirs ? strdup(theirs) : NULL;
    pythonpath_swapped = 1;
    environ_before = environ;
    for (environ_count = 0; environ && environ[environ_count]; environ_count++)
        ;
    setenv("PYTHONPATH", ours, 1);
    const char *home = env("PYFALLOC_PYTHONHOME");
    if (home && !env("PYTHONHOME")) {
        setenv("PYTHONHOME", home, 1);
        home_set = 1;
    }
}

/* A variable added for the start made setenv move the environment to an array of its own.
 * A program may hold the first one (strace keeps it, and frees its own copy when environ
 * differs at the end: free of the stack): with the same variables again, they go back in
 * it. */
static void keep_environ_array(void)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    if (!environ_before || environ == environ_before || n != environ_count)
        return;
    memmove(environ_before, environ, (n + 1) * sizeof *environ);
    environ = environ_before;
}

/* map a Python answer (result + 1, -errno, or 0 = Python did not start) to libc's way */
long long done(long long r)
{
    if (pythonpath_swapped) {       /* whether or not the start succeeded */
        if (program_pythonpath)
            setenv("PYTHONPATH", program_pythonpath, 1);
        else
            unsetenv("PYTHONPATH");
        free(program_pythonpath);
        pythonpath_swapped = 0;
        if (home_set)
            unsetenv("PYTHONHOME");
        home_set = 0;
        keep_environ_array();
    }
    if (!python_started && r != 0) {
        for (int i = 0; signals_saved && i < 3; i++)
            sigaction(kept_signals[i], &program_sig[i], NULL);
        __atomic_store_n(&python_started, 1, __ATOMIC_RELEASE);
    }
    if (holding_start && !in_py) {
        holding_start = 0;
        pthread_mutex_unlock(&start_lock);
    }
    end_turn();
    if (r > 0)
        return r - 1;
    if (r == 0) {
        static int told;
        if (!told && unusable_errno)
            fprintf(stderr, "libpyfalloc: the Python pyfalloc runs on (%s) cannot be read by user %d: %s; "
                            "the image is unavailable to this process\n",
                    env("PYFALLOC_PYTHONHOME") ? env("PYFALLOC_PYTHONHOME") : "", (int)geteuid(), strerror(unusable_errno));
        else if (!told)
            fprintf(stderr, "libpyfalloc: the embedded Python did not start "
                            "(run programs through `pyfalloc run`, which sets PYFALLOC_PYTHONHOME)\n");
        told = 1;
        errno = unusable_errno ? unusable_errno : ENOSYS;
        return -1;
    }
    errno = (int)-r;
    return -1;
}

/* image_path keeps a trailing slash for the checks it asks for; a name kept for later
 * (the working directory, a descriptor's path) is the directory's own, without it */
void drop_trailing_slash(char *path)
{
    size_t n = strlen(path);
    if (n > 1 && path[n - 1] == '/')
        path[n - 1] = 0;
}

void set_virt(int fd, const char *path, int acc)
{
    forget_extent(fd);
    forget_base(fd);
    virt[fd] = 1;
    vacc[fd] = (unsigned char)(acc & O_ACCMODE);
    vdirect[fd] = (acc & O_DIRECT) != 0;
    free(vpath[fd]);
    vpath[fd] = path && *path ? strdup(path) : NULL;
    if (vpath[fd])
        drop_trailing_slash(vpath[fd]);
}

int failed_errno(int e)
{
    errno = e;
    return -1;
}

void clear_virt(int fd)
{
    forget_extent(fd);
    forget_base(fd);
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
/* The shadow of an open image file is an open of one empty file per inode in the volume's
 * runtime directory (created by the Python half when it opens the volume), with
 * the program's access mode and flags. So the kernel keeps, per open file description, the
 * position, O_APPEND, FD_CLOEXEC and the locks: flock, POSIX and OFD locks taken on image
 * files conflict between processes exactly as on a kernel filesystem, and release as Linux
 * specifies for each kind. */
/* The process's environment as the kernel handed it over: a program may define its own
 * getenv (bash does, over its variable table, which is empty while constructors run). */
extern char **environ;
const char *env(const char *name)
{
    size_t n = strlen(name);
    for (char **e = environ; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* The volume's runtime directory, /dev/shm/pyfalloc-UUID-DEV-INO.d as pyfalloc/store/shared.py
 * names it: from the image itself (its UUID in the superblock, its device and inode), so a
 * process started by any exec — a shell passes on only the environment it knows — finds it. */
static const char *shadow_dir(void)
{
    static char dir[256];
    static int tried;
    if (dir[0] || tried)
        return dir[0] ? dir : NULL;
    tried = 1;
    const char *given = env("PYFALLOC_RUNTIME");     /* an export: Python named it */
    if (given && strlen(given) < sizeof dir) {
        strcpy(dir, given);
        return dir;
    }
    const char *image = env("PYFALLOC_IMAGE");
    unsigned char uuid[16];
    struct stat st;
    int fd = image ? k_open(image, O_RDONLY | O_CLOEXEC, 0) : -1;
    if (fd < 0)
        return NULL;
    /* superblock: magic (8 bytes), version (4), UUID (16) */
    ssize_t got = pread(fd, uuid, sizeof uuid, 12);
    int ok = got == (ssize_t)sizeof uuid && fstat(fd, &st) == 0;
    k_close(fd);
    if (!ok)
        return NULL;
    int n = snprintf(dir, sizeof dir, "/dev/shm/pyfalloc-");
    for (int i = 0; i < 16; i++)
        n += snprintf(dir + n, sizeof dir - n, "%02x", uuid[i]);
    snprintf(dir + n, sizeof dir - n, "-%lx-%lx.d", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
    return dir;
}

const char *runtime_dir(void) { return shadow_dir(); }

/* A umask must not narrow a shadow the process made: other users' processes open it once
 * the volume's own checks (mode, ACL) let them (the shadow holds no bytes of the file). */
static void widen_shadow(int fd)
{
    if (process_umask() & 0066)
        syscall(SYS_fchmod, fd, 0666);
}

/* a new descriptor (the lowest free number) on the shadow of inode ino, opened with flags */
int open_shadow(long long ino, int flags)
{
    const char *dir = shadow_dir();
    char name[4200];
    if (!dir)
        return failed_errno(EIO);
    snprintf(name, sizeof name, "%s/%lld", dir, ino);
    int acc = flags & O_PATH ? O_PATH : flags & O_ACCMODE;
    if (acc == O_PATH) {            /* O_PATH ignores O_CREAT: the inode's file is made first */
        int made = k_open(name, O_CREAT | O_RDONLY | O_CLOEXEC, 0666);
        if (made >= 0) {
            widen_shadow(made);
            k_close(made);
        }
    }
    /* the description's flags the kernel keeps (F_GETFL shows them; O_SYNC's bits say a
     * write must be durable when it returns) */
    int kept = O_CREAT | acc | (flags & (O_APPEND | O_NONBLOCK | O_CLOEXEC | O_SYNC | O_DSYNC | O_DIRECT));
    int s = k_open(name, kept, 0666);
    if (s < 0 && errno == EINVAL && (kept & O_DIRECT))     /* a tmpfs without O_DIRECT (before Linux 6.6) */
        s = k_open(name, kept & ~O_DIRECT, 0666);
    if (s >= 0)
        widen_shadow(s);
    return s;
}

/* put the shadow of inode ino, opened with flags, on descriptor number fd */
static int make_shadow(int fd, long long ino, int flags)
{
    int s = open_shadow(ino, flags | O_CLOEXEC);
    if (s < 0)
        return -1;
    int r = k_dup3(s, fd, flags & O_CLOEXEC);
    int e = errno;
    k_close(s);
    errno = e;
    return r < 0 ? -1 : 0;
}

/* the inode a shadow stands for, or -1 when fd is no shadow */
static long long shadow_ino(int fd)
{
    const char *dir = shadow_dir();
    char proc[64], link[4200];
    if (!dir)
        return -1;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, link, sizeof link - 1);
    size_t dl = strlen(dir);
    if (n <= 0 || (size_t)n <= dl + 1 || strncmp(link, dir, dl) || link[dl] != '/')
        return -1;
    link[n] = 0;
    char *end;
    long long ino = strtoll(link + dl + 1, &end, 10);
    return *end && strcmp(end, " (deleted)") ? -1 : ino;
}

/* The embedded Python needs descriptors of its own to start (its imports, the volume's
 * files): a program at its RLIMIT_NOFILE gets EMFILE, not a Python that never starts. */
static int room_to_start(void)
{
    enum { NEEDED = 16 };
    int held[NEEDED], n = 0, ok = 1;
    for (; n < NEEDED; n++)
        if ((held[n] = k_open("/dev/null", O_PATH | O_CLOEXEC, 0)) < 0) {
            ok = 0;
            break;
        }
    while (n--)
        k_close(held[n]);
    return ok;
}

int open_image(const char *path, int flags, mode_t mode)
{
    if (!python_started && !room_to_start())
        return failed_errno(EMFILE);
    int fast = open_cached(path, flags);
    if (fast != -2)
        return fast;
    unsigned long long pos[2];
    int known = log_position(pos);      /* before Python answers, as for a stat */
    /* reserve the lowest free number, as open(2) would give, while Python opens the file */
    int fd = k_open("/dev/null", O_PATH | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (fd >= MAX_FDS) {
        k_close(fd);
        errno = EMFILE;
        return -1;
    }
    long long got[2] = {0, 0};          /* the inode; whether its last close has nothing to do */
    /* the umask apart: a directory's default ACL takes its place (posix_acl_create) */
    int mask = flags & O_CREAT || (flags & O_TMPFILE) == O_TMPFILE ? (int)process_umask() : 0;
    if (PY(pyf_open(inner(path), flags, (int)mode, mask, fd, got)) < 0) {
        int e = errno;
        const char *host = left_image();
        k_close(fd);
        if (host)                       /* a link led out of the image: a host file */
            return k_open(host, flags, mode);
        if (known && (e == ENOENT || e == ENOTDIR || e == EACCES || e == EISDIR || e == EPERM
                      || e == ENAMETOOLONG))
            answer_remember(ANSWERS_OPEN, inner(path), flags, pos, got, 2, e);
        errno = e;
        return -1;
    }
    long long ino = got[0];
    if (known)
        answer_remember(ANSWERS_OPEN, inner(path), flags, pos, got, 2, 0);
    if (make_shadow(fd, ino, flags) < 0) {
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

/* a descriptor received from another process (SCM_RIGHTS) that is a shadow becomes an image
 * file of this one, as an inherited one does */
void adopt_received(int fd)
{
    long long ino = fd >= 0 && fd < MAX_FDS && !virt[fd] ? shadow_ino(fd) : -1;
    if (ino < 0)
        return;
    int flags = k_fcntl(fd, F_GETFL, 0);
    if (PY(pyf_adopt(fd, ino, flags)) >= 0)
        set_virt(fd, NULL, flags);
}

/* after exec: the shadows this process inherited become its image files again (their paths,
 * needed only for *at calls relative to a directory, are asked of Python when needed) */
static void adopt_shadows(void)
{
    DIR *(*opendir_)(const char *) = (DIR * (*)(const char *)) dlsym(RTLD_NEXT, "opendir");
    struct dirent *(*readdir_)(DIR *) = (struct dirent * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir");
    int (*closedir_)(DIR *) = (int (*)(DIR *))dlsym(RTLD_NEXT, "closedir");
    DIR *d = shadow_dir() && opendir_ ? opendir_("/proc/self/fd") : NULL;
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir_(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd < 0 || fd >= MAX_FDS || fd == dirfd(d))
            continue;
        if (shadow_ino(fd) >= 0)
            set_virt(fd, NULL, k_fcntl(fd, F_GETFL, 0));
    }
    closedir_(d);
}

/* the path of an image descriptor adopted across exec, asked of Python the first time */
const char *virt_path(int fd)
{
    if (vpath[fd] || !is_virt(fd))
        return vpath[fd];
    char inside[4096];
    if (PY(pyf_path(fd, inside, sizeof inside)) < 0)
        return NULL;
    char full[8192];
    vpath[fd] = outer(inside, full, sizeof full) ? strdup(full) : NULL;
    return vpath[fd];
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

static void after_fork(const char *hook, int child)
{
    if (!fork_held)
        return;
    void (*after)(void) = (void (*)(void))py_sym(hook);
    void (*release)(int) = (void (*)(int))py_sym("PyGILState_Release");
    void *(*save)(void) = (void *(*)(void))py_sym("PyEval_SaveThread");
    in_py++;                /* the child's store reopens its lock descriptions: kept high */
    if (after)
        after();
    in_py--;
    /* The child's only thread state is the one made for this fork: releasing it would
     * delete it, and the interpreter (3.11) then makes its next one in the place of the
     * first it ever had, still marked as in use, and stops ("thread state already
     * initialized"). The child keeps it, giving up only the lock. */
    if (child && save)
        save();
    else if (release)
        release(fork_gil);
    fork_held = 0;
}

/* the interpreter's lock first, then the shim's holds (Python claims under its lock) */
static void prepare_fork(void)
{
    if (!holding_start)
        pthread_mutex_lock(&start_lock);
    before_fork();
    holds_before_fork();
}
static void after_fork_parent(void)
{
    holds_after_fork(0);
    after_fork("PyOS_AfterFork_Parent", 0);
    if (!holding_start)
        pthread_mutex_unlock(&start_lock);
}
/* the child's Python re-takes its locks on descriptions of its own (pyfalloc/store/forks.py),
 * and so does the shim */
static void after_fork_child(void)
{
    owner = getpid();
    pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;   /* its holder stayed behind */
    py_turn = fresh;
    turn_held = 0;
    if (reclaim_after_fork(&vbase_lock))
        memset(vkind, 0, sizeof vkind);
    holds_after_fork(1);
    after_fork("PyOS_AfterFork_Child", 1);
    if (!holding_start)
        pthread_mutex_unlock(&start_lock);
}

__attribute__((constructor)) static void shim_init(void)
{
    owner = getpid();
    const char *m = env("PYFALLOC_MOUNT");
    if (m && *m == '/' && strlen(m) < sizeof prefix) {
        strcpy(prefix, m);
        prefix_len = strlen(prefix);
        while (prefix_len > 1 && prefix[prefix_len - 1] == '/')
            prefix[--prefix_len] = 0;
    }
    memcpy(prefix_parent, prefix, prefix_len + 1);
    const char *pythonpath = env("PYTHONPATH");
    importer_fix_pending = pythonpath && strstr(pythonpath, prefix) && !strpbrk(prefix, "'\\");
    char *slash = strrchr(prefix_parent, '/');
    if (slash)
        slash[slash == prefix_parent] = 0;
    /* an image working directory handed over by exec (see exec.c) */
    const char *cwd = env("PYFALLOC_CWD");
    if (cwd && on_image(cwd) && strlen(cwd) < sizeof vcwd)
        strcpy(vcwd, cwd);
    publish_cwd();
    note_host_cwd();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        long top = rl.rlim_cur < 4096 ? (long)rl.rlim_cur : 4096;
        own_base = top > 256 ? (int)(top - 128) : (int)(top / 2);
    }
    pthread_atfork(prepare_fork, after_fork_parent, after_fork_child);
    adopt_shadows();
    for (int fd = 0; fd <= 2; fd++)
        std_rebind(fd);
}
