/* Opens answered in C while nothing changed: Python's answer to an open that changed no
 * metadata is kept by path and flags while the log stays put (answers.c). Such an open
 * needs no Python: the descriptor is the inode's shadow, and the inode is held open (the lock byte
 * pyfalloc/store/handles.py names) on a description of the shim's own.
 *
 * Python learns of such a descriptor when a call first brings it there: it claims it
 * (pyf_claim), takes its own hold, and the shim lets go of its one (pyf_unhold). A descriptor
 * Python never saw closes here; if the log moved since its open, or the inode had work left
 * for its last close (preallocation to drop, an unlinked inode to free), and nobody else
 * holds it, Python does that work (pyf_release). */
#include "interpose.h"
#include <pthread.h>

#define HANDLE_BASE (1LL << 40)
enum { HOLD_SLOTS = 4096 };

/* descriptors opened here that Python has not claimed */
static struct {
    long long ino;                  /* 0: none */
    int flags;
    int clean;
    unsigned long long epoch, tail; /* the log position of the answer */
} pending[MAX_FDS];

/* the shim's holds by inode, open addressing; a full table sends opens to Python */
static struct {
    long long ino;                  /* 0: free, -1: deleted */
    int count;
} holds[HOLD_SLOTS];
static int hold_fd = -1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int handle_lock(long long ino, short kind, int cmd)
{
    struct flock l = {.l_type = kind, .l_whence = SEEK_SET, .l_start = HANDLE_BASE + ino, .l_len = 1};
    int r = k_fcntl(hold_fd, cmd, (long)&l);
    return r < 0 ? r : l.l_type;
}

static int hold_slot(long long ino, int add)
{
    unsigned h = (unsigned)((unsigned long long)ino * 0x9E3779B97F4A7C15ull >> 52) % HOLD_SLOTS;
    int free_at = -1;
    for (int i = 0; i < HOLD_SLOTS; i++, h = (h + 1) % HOLD_SLOTS) {
        if (holds[h].ino == ino)
            return (int)h;
        if (holds[h].ino <= 0 && free_at < 0)
            free_at = (int)h;
        if (holds[h].ino == 0)
            break;
    }
    if (!add || free_at < 0)
        return -1;
    holds[free_at].ino = ino;
    holds[free_at].count = 0;
    return free_at;
}

/* take a hold on ino (under lock) */
static int hold(long long ino)
{
    if (hold_fd < 0 && (hold_fd = open_log(O_RDONLY)) < 0)
        return -1;
    int s = hold_slot(ino, 1);
    if (s < 0)
        return -1;
    if (!holds[s].count && handle_lock(ino, F_RDLCK, F_OFD_SETLKW) < 0) {
        holds[s].ino = -1;
        return -1;
    }
    holds[s].count++;
    return 0;
}

/* let go of a hold on ino (under lock); 1 when this process's shim holds it no more */
static int unhold(long long ino)
{
    int s = hold_slot(ino, 0);
    if (s < 0)
        return 0;
    if (--holds[s].count > 0)
        return 0;
    holds[s].ino = -1;
    handle_lock(ino, F_UNLCK, F_OFD_SETLK);
    return 1;
}

/* An unlink that asked for holders before this process's hold may be under way, about to
 * free the inode (see Filesystem.hold_existing). Such a change says so in the log before
 * it asks and unsays it once published: with nothing said after the hold, or once the
 * writer's lock has been free, an unchanged log position says no change ended since the
 * answer was given. */
static int still_at(const unsigned long long pos[2])
{
    if (!log_no_reaping())
        return 0;
    unsigned long long now[2];
    return log_position(now) && now[0] == pos[0] && now[1] == pos[1];
}

int open_cached(const char *path, int flags)
{
    unsigned long long pos[2];
    long long got[2];               /* the inode; whether its last close has nothing to do */
    if ((flags & O_TMPFILE) == O_TMPFILE || !log_position(pos))
        return -2;
    int hit = answer_lookup(ANSWERS_OPEN, inner(path), flags, pos, got, 2);
    if (hit <= 0)
        return hit < 0 ? -1 : -2;
    pthread_mutex_lock(&lock);
    long long ino = got[0];
    int clean = (int)got[1];
    if (hold(ino) < 0) {
        pthread_mutex_unlock(&lock);
        return -2;
    }
    pthread_mutex_unlock(&lock);
    if (!still_at(pos)) {
        pthread_mutex_lock(&lock);
        unhold(ino);
        pthread_mutex_unlock(&lock);
        return -2;
    }
    int fd = open_shadow(ino, flags);
    if (fd >= 0 && fd >= MAX_FDS) {
        k_close(fd);
        fd = failed_errno(EMFILE);
    }
    pthread_mutex_lock(&lock);
    if (fd < 0) {
        int e = errno;
        unhold(ino);
        pthread_mutex_unlock(&lock);
        return failed_errno(e);
    }
    pending[fd].ino = ino;
    pending[fd].flags = flags;
    pending[fd].clean = clean;
    pending[fd].epoch = pos[0];
    pending[fd].tail = pos[1];
    pthread_mutex_unlock(&lock);
    set_virt(fd, path, flags);
    std_rebind(fd);
    return fd;
}

int close_unclaimed(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return 0;
    pthread_mutex_lock(&lock);
    long long ino = pending[fd].ino;
    if (!ino) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    pending[fd].ino = 0;
    unsigned long long pos[2] = {0, 0};
    int settled = pending[fd].clean && log_position(pos) && pos[0] == pending[fd].epoch
                  && pos[1] == pending[fd].tail;
    int last = unhold(ino);
    /* another holder, in this process's Python or elsewhere, does the work at its close */
    if (last && !settled && handle_lock(ino, F_WRLCK, F_OFD_GETLK) == F_UNLCK) {
        pthread_mutex_unlock(&lock);
        PY(pyf_release(ino));
        return 1;
    }
    pthread_mutex_unlock(&lock);
    return 1;
}

/* ---- called by Python ---------------------------------------------------------------------- */
int pyf_claim(int fd, long long *ino)
{
    if (fd < 0 || fd >= MAX_FDS)
        return -1;
    pthread_mutex_lock(&lock);
    int flags = pending[fd].ino ? pending[fd].flags : -1;
    *ino = pending[fd].ino;
    pending[fd].ino = 0;
    pthread_mutex_unlock(&lock);
    return flags;
}

void pyf_unhold(long long ino)
{
    pthread_mutex_lock(&lock);
    unhold(ino);
    pthread_mutex_unlock(&lock);
}

void holds_before_fork(void) { pthread_mutex_lock(&lock); }

/* a forked child holds its inodes on a description of its own: the parent's unlocks would
 * otherwise drop the child's holds */
void holds_after_fork(int child)
{
    if (child && hold_fd >= 0) {
        int fd = open_log(O_RDONLY);
        if (fd >= 0) {
            forget_own(hold_fd);
            k_close(hold_fd);
            hold_fd = fd;
            for (int i = 0; i < HOLD_SLOTS; i++)
                if (holds[i].ino > 0 && holds[i].count > 0)
                    handle_lock(holds[i].ino, F_RDLCK, F_OFD_SETLKW);
        }
    }
    pthread_mutex_unlock(&lock);
}
