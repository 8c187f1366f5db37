/* The program's file-size limit (RLIMIT_FSIZE, `ulimit -f`). It is the program's to apply to
 * its files on the image, as the kernel applies it (pyfalloc/syscalls/limits.py says where);
 * the image, the metadata and the volume's runtime files are files of the shim's, written at
 * offsets far past any small limit, and the kernel would refuse those writes with EFBIG and a
 * SIGXFSZ the program never caused. So while a thread is inside the Python half the limit is
 * lifted (to the hard limit, or to none when the process may raise the hard one) and put back
 * when it leaves; the program's value is kept for the Python half to apply. A SIGXFSZ the
 * program's call earned is sent when the call leaves Python, as the kernel's arrives when the
 * system call returns: the program's handler never runs inside Python. */
#include "interpose.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>

/* The limit is the process's, so one lift serves every thread inside: the first in lifts,
 * the last out puts the program's value back. A hard limit only CAP_SYS_RESOURCE may raise
 * (bash's `ulimit -f` sets both) can leave the shim's writes refused: the call then fails
 * with EFBIG, and the kernel's SIGXFSZ for them is taken back (blocked while inside, then
 * consumed), since the program's own file did not cause it.
 * The program's value is kept in memory (an overwrite in C must not pay a system call to
 * read it) and read again after the program sets a limit through libc; another process's
 * prlimit on this one goes unnoticed. */
#define UNKNOWN (-2LL)
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
RECLAIMED_AT_FORK(lock, )
static int inside, lifted, capped;
static struct rlimit program;
static long long known = UNKNOWN;       /* the program's soft limit, -1 for none */
static __thread int depth, xfsz_pending, masked, was_pending;
static __thread sigset_t mask_before;

REAL(long, syscall, long, ...)
REAL(int, setrlimit, __rlimit_resource_t, const struct rlimit *)
REAL(int, prlimit, pid_t, __rlimit_resource_t, const struct rlimit *, struct rlimit *)

static int get_fsize(struct rlimit *r)
{
    load_syscall();
    return (int)real_syscall(SYS_prlimit64, 0, RLIMIT_FSIZE, NULL, r);
}

static int set_fsize(const struct rlimit *r)
{
    load_syscall();
    return (int)real_syscall(SYS_prlimit64, 0, RLIMIT_FSIZE, r, NULL);
}

static long long soft(const struct rlimit *r) { return r->rlim_cur == RLIM_INFINITY ? -1 : (long long)r->rlim_cur; }

/* the program's soft limit, under the lock */
static long long program_limit(void)
{
    if (inside)
        return soft(&program);
    if (known == UNKNOWN) {
        struct rlimit now;
        __atomic_store_n(&known, get_fsize(&now) ? -1 : soft(&now), __ATOMIC_RELEASE);
    }
    return known;
}

void fsize_lift(void)
{
    if (depth++)
        return;
    int e = errno;
    pthread_mutex_lock(&lock);
    if (!inside && program_limit() >= 0) {
        lifted = capped = 0;
        if (!get_fsize(&program) && program.rlim_cur != RLIM_INFINITY) {
            struct rlimit none = {RLIM_INFINITY, RLIM_INFINITY};
            struct rlimit hard = {program.rlim_max, program.rlim_max};
            if (!set_fsize(&none))
                lifted = 1;
            else {
                capped = 1;
                lifted = program.rlim_max != program.rlim_cur && !set_fsize(&hard);
            }
        }
    } else if (!inside) {
        lifted = capped = 0;
        program.rlim_cur = program.rlim_max = RLIM_INFINITY;
    }
    inside++;
    int cap = capped;
    pthread_mutex_unlock(&lock);
    masked = 0;
    if (cap) {
        sigset_t xfsz, pending;
        sigemptyset(&xfsz);
        sigaddset(&xfsz, SIGXFSZ);
        sigpending(&pending);
        was_pending = sigismember(&pending, SIGXFSZ);
        masked = !pthread_sigmask(SIG_BLOCK, &xfsz, &mask_before);
    }
    errno = e;
}

static void send_xfsz(void) { syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGXFSZ); }

void fsize_restore(void)
{
    if (--depth)
        return;
    int e = errno;
    if (masked) {
        sigset_t xfsz, pending;
        sigemptyset(&xfsz);
        sigaddset(&xfsz, SIGXFSZ);
        struct timespec zero = {0, 0};
        if (!was_pending && !sigpending(&pending) && sigismember(&pending, SIGXFSZ))
            sigtimedwait(&xfsz, NULL, &zero);
        pthread_sigmask(SIG_SETMASK, &mask_before, NULL);
        masked = 0;
    }
    pthread_mutex_lock(&lock);
    if (!--inside && lifted) {
        set_fsize(&program);
        lifted = 0;
    }
    pthread_mutex_unlock(&lock);
    if (xfsz_pending) {
        xfsz_pending = 0;
        send_xfsz();
    }
    errno = e;
}

void pyf_fsize_lift(void) { fsize_lift(); }
void pyf_fsize_restore(void) { fsize_restore(); }

/* the program's soft limit: -1 for none */
long long pyf_fsize_limit(void)
{
    long long k = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
    if (k == -1 && !__atomic_load_n(&inside, __ATOMIC_ACQUIRE))
        return -1;                      /* the common case: no limit, nothing lifted */
    pthread_mutex_lock(&lock);
    k = program_limit();
    pthread_mutex_unlock(&lock);
    return k;
}

/* the program set a limit: read it again at the next use */
void fsize_changed(void)
{
    pthread_mutex_lock(&lock);
    __atomic_store_n(&known, UNKNOWN, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&lock);
}

int setrlimit(__rlimit_resource_t resource, const struct rlimit *r)
{
    load_setrlimit();
    int rc = real_setrlimit(resource, r);
    if (rc == 0 && resource == RLIMIT_FSIZE)
        fsize_changed();
    return rc;
}

/* struct rlimit64 is struct rlimit on 64-bit Linux */
int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *r)
{
    return setrlimit(resource, (const struct rlimit *)r);
}

int prlimit(pid_t pid, __rlimit_resource_t resource, const struct rlimit *r, struct rlimit *old)
{
    load_prlimit();
    int rc = real_prlimit(pid, resource, r, old);
    if (rc == 0 && r && resource == RLIMIT_FSIZE && (pid == 0 || pid == getpid()))
        fsize_changed();
    return rc;
}

int prlimit64(pid_t pid, __rlimit_resource_t resource, const struct rlimit64 *r, struct rlimit64 *old)
{
    return prlimit(pid, resource, (const struct rlimit *)r, (struct rlimit *)old);
}

void pyf_xfsz(void)
{
    if (depth)
        xfsz_pending = 1;
    else
        send_xfsz();
}

/* The kernel's check of a write of n bytes at off (generic_write_check_limits): -1 and EFBIG,
 * with the signal, at or past the program's limit; else how many of the n it may write.
 * *limited (when given) tells whether there is a limit at all. */
long long fsize_room(long long off, long long n, int *limited)
{
    long long lim = pyf_fsize_limit();
    if (limited)
        *limited = lim >= 0;
    if (lim < 0)
        return n;
    if (off >= lim) {
        pyf_xfsz();
        errno = EFBIG;
        return -1;
    }
    return n < lim - off ? n : lim - off;
}
