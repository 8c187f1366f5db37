/* Reads of written blocks, and overwrites that change no metadata, without entering Python.
 * The Python half hands out, per descriptor, the extent that holds an offset together with
 * the file's size and the inode's two counters its answer reflects (pyf_extent): the change
 * counter, moved when a change is published, and the gate's, moved when a change of the
 * bytes or mapping starts (pyfalloc/store/gates.py). While neither has moved — no process
 * changed that inode since, whatever it did to others — that answer still holds, and a read
 * inside the extent and the file goes straight to the image. No system call but the
 * read's: a read checks the counters before and after, and an overwrite holds the gate's
 * mutex, an uncontended atomic operation. */
#include "interpose.h"
#include <pthread.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <time.h>

/* the shared log's header (pyfalloc/store/shared.py): byte offsets of the u64 fields, the
 * change counters by inode after it, then the gates (a mutex, and its counter at COUNT_AT) */
enum { SHM_EPOCH = 24, SHM_TAIL = 32, SHM_REAPING = 120, SHM_WRITER = 192, SHM_GENS = 4096, GEN_SLOTS = 8192, SHM_GATES = SHM_GENS + 8 * GEN_SLOTS,
       GATE_SIZE = 64, COUNT_AT = 48, SHM_MAPPED = SHM_GATES + GATE_SIZE * GEN_SLOTS };
/* what pyf_extent answers, in this order */
enum { X_EPOCH, X_GEN, X_SIZE, X_LBLK, X_LEN, X_PBLK, X_UNWRITTEN, X_BS, X_INO, X_MTIME, X_FLAGS, X_GATE, X_COUNT };

struct cached {
    long long x[X_COUNT];
    int valid;
};
static struct cached cache[MAX_FDS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *header;
static int image_fd = -1;
static int unusable;                /* no image or log to read: always the slow way */
static int gates_usable;            /* the log could be mapped writable: overwrites may come here */

REAL(ssize_t, pread, int, void *, size_t, off_t)
REAL(ssize_t, pwrite, int, const void *, size_t, off_t)

/* a child whose parent was filling the cache at the fork starts with none */
RECLAIMED_AT_FORK(cache_lock, for (int fd = 0; fd < MAX_FDS; fd++) cache[fd].valid = 0)

static unsigned long long field(long at) { return __atomic_load_n((unsigned long long *)(header + at), __ATOMIC_ACQUIRE); }

static pthread_mutex_t *gate_of(long long ino) { return (pthread_mutex_t *)(header + SHM_GATES + GATE_SIZE * (ino % GEN_SLOTS)); }

static int gate_take(pthread_mutex_t *m)
{
    int r = pthread_mutex_lock(m);
    if (r == EOWNERDEAD)            /* its holder died; what it guards is a single store */
        r = pthread_mutex_consistent(m);
    return r;
}

/* The Python half's gates (pyfalloc/store/gates.py) at addresses of its own mapping of the
 * log: taken and given as the overwrites here take them, and made as its mutexes must be. */
int pyf_gate_take(unsigned long long at) { return gate_take((pthread_mutex_t *)(uintptr_t)at); }
void pyf_gate_give(unsigned long long at) { pthread_mutex_unlock((pthread_mutex_t *)(uintptr_t)at); }

int pyf_gates_init(unsigned long long at, int slots)
{
    pthread_mutexattr_t a;
    int r = pthread_mutexattr_init(&a);
    r = r ? r : pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    r = r ? r : pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    r = r ? r : pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    for (int i = 0; !r && i < slots; i++)
        r = pthread_mutex_init((pthread_mutex_t *)(uintptr_t)(at + (unsigned long long)GATE_SIZE * i), &a);
    pthread_mutexattr_destroy(&a);
    return r;
}

/* the cached answer still holds: no process changed the inode, or began to, since it was given */
static int still_holds(const struct cached *c)
{
    long slot = (long)(c->x[X_INO] % GEN_SLOTS);
    return field(SHM_EPOCH) == (unsigned long long)c->x[X_EPOCH]
           && field(SHM_GENS + 8 * slot) == (unsigned long long)c->x[X_GEN]
           && field(SHM_GATES + GATE_SIZE * slot + COUNT_AT) == (unsigned long long)c->x[X_GATE];
}

static struct cached cached_of(int fd)
{
    struct cached c;
    pthread_mutex_lock(&cache_lock);
    c = cache[fd];
    pthread_mutex_unlock(&cache_lock);
    return c;
}

static int fill(int fd, off_t off)
{
    long long x[X_COUNT];
    if (PY(pyf_extent(fd, off, x)) <= 0)     /* 1: an extent holds off */
        return 0;
    pthread_mutex_lock(&cache_lock);
    memcpy(cache[fd].x, x, sizeof x);
    cache[fd].valid = 1;
    pthread_mutex_unlock(&cache_lock);
    return 1;
}

/* a description of the shared log of its own, among the shim's descriptors (mode:
 * O_RDONLY, or O_RDWR to take gates) */
int open_log(int mode)
{
    const char *shadows = runtime_dir();
    size_t n = shadows ? strlen(shadows) : 0;
    if (n < 3 || strcmp(shadows + n - 2, ".d"))
        return failed_errno(ENOENT);
    char log[4200];
    snprintf(log, sizeof log, "%.*s", (int)(n - 2), shadows);
    in_py++;
    int fd = keep_high(k_open(log, mode | O_CLOEXEC, 0));
    in_py--;
    return fd;
}

/* the image and the log's header, opened once (kept in the shim's own descriptor range) */
static int ready(void)
{
    if (header)
        return 1;
    if (unusable)
        return 0;
    const char *image = env("PYFALLOC_IMAGE"), *shadows = runtime_dir();
    size_t n = shadows ? strlen(shadows) : 0;
    /* an image file is named by its absolute path (pyfalloc run makes it so); a device
     * URI or spec is not, and only Python reads those */
    if (!image || image[0] != '/' || n < 3 || strcmp(shadows + n - 2, ".d")) {
        unusable = 1;
        return 0;
    }
    /* the gates are written (their mutexes): a user who may only read the log reads here
     * and writes the slow way */
    int lf = open_log(O_RDWR);
    gates_usable = lf >= 0;
    if (lf < 0)
        lf = open_log(O_RDONLY);
    in_py++;                        /* so the descriptor goes high, where the program cannot reach */
    int img = keep_high(k_open(image, O_RDWR | O_CLOEXEC, 0));
    in_py--;
    void *m = lf >= 0 ? mmap(NULL, SHM_MAPPED, PROT_READ | (gates_usable ? PROT_WRITE : 0), MAP_SHARED, lf, 0) : MAP_FAILED;
    if (lf >= 0) {
        forget_own(lf);
        k_close(lf);
    }
    if (m == MAP_FAILED || img < 0) {
        if (img >= 0) {
            forget_own(img);
            k_close(img);
        }
        unusable = 1;
        return 0;
    }
    image_fd = img;
    header = m;
    return 1;
}

void forget_extent(int fd)
{
    if (fd >= 0 && fd < MAX_FDS)
        cache[fd].valid = 0;
}

/* the bytes [off, off + n) of fd if its cached extent holds them: the count (0 at or past
 * the end), or -2 when the slow way must answer. The counters read again after the read
 * prove that no change of the inode began before it ended: the bytes were the file's. */
static ssize_t try_fast(int fd, void *buf, size_t n, off_t off)
{
    struct cached c = cached_of(fd);
    if (!c.valid || !still_holds(&c))
        return -2;                  /* the inode changed: the answer may be stale */
    long long size = c.x[X_SIZE], bs = c.x[X_BS];
    long long start = c.x[X_LBLK] * bs, end = (c.x[X_LBLK] + c.x[X_LEN]) * bs;
    if (off >= size)
        return 0;
    if ((long long)n > size - off)
        n = (size_t)(size - off);
    if (c.x[X_UNWRITTEN] || off < start || off + (long long)n > end)
        return -2;
    load_pread();
    ssize_t r = real_pread(image_fd, buf, n, c.x[X_PBLK] * bs + (off - start));
    return r == (ssize_t)n && still_holds(&c) ? r : -2;
}

ssize_t image_pread(int fd, void *buf, size_t n, off_t off)
{
    if (DIO_MISALIGNED(fd, off, buf, n))
        return failed_errno(EINVAL);
    if (n && off >= 0 && fd < MAX_FDS && vacc[fd] != O_WRONLY && ready()) {
        ssize_t r = try_fast(fd, buf, n, off);
        if (r >= 0)
            return r;
        if (fill(fd, off) && (r = try_fast(fd, buf, n, off)) >= 0)
            return r;
    }
    return PY(pyf_read(fd, buf, (long long)n, off));
}

/* An overwrite inside the file and one written extent, within the clock tick of the file's
 * mtime (the kernel moves times only when the coarse clock did): nothing in the metadata
 * changes, so it goes straight to the image under the inode's gate alone. Every change in
 * Python of a file's bytes or written blocks moves the gate's counter under its mutex first
 * (mapping holes, which nothing here reaches, does not), and every read in Python holds the
 * mutex; a move holds the inode lock throughout but the data
 * lock per step, and an overwrite between two steps lands in blocks the next step copies
 * (or, once a step has swapped them, finds a counter moved). -2 when the slow way must write. */
static ssize_t try_fast_write(int fd, const void *buf, size_t n, off_t off, int limited)
{
    struct cached c = cached_of(fd);
    if (!c.valid || (c.x[X_FLAGS] & (FS_APPEND_FL | FS_IMMUTABLE_FL)) || c.x[X_UNWRITTEN])
        return -2;
    long long bs = c.x[X_BS], start = c.x[X_LBLK] * bs, end = (c.x[X_LBLK] + c.x[X_LEN]) * bs;
    if (off < start || off + (long long)n > end || off + (long long)n > c.x[X_SIZE])
        return -2;
    struct timespec now;
    double mtime;
    memcpy(&mtime, &c.x[X_MTIME], sizeof mtime);
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    if ((double)now.tv_sec + now.tv_nsec * 1e-9 != mtime)       /* computed as Python does */
        return -2;
    pthread_mutex_t *gate = gate_of(c.x[X_INO]);
    if (gate_take(gate))
        return -2;
    ssize_t r = -2;
    if (still_holds(&c)) {
        load_pwrite();
        if (limited)
            fsize_lift();
        r = real_pwrite(image_fd, buf, n, c.x[X_PBLK] * bs + (off - start));
        if (limited)
            fsize_restore();
        if (r != (ssize_t)n)
            r = -2;
    }
    pthread_mutex_unlock(gate);
    return r;
}

/* -1 and errno: refused (the program's file-size limit); -2: the slow way must write */
ssize_t image_pwrite_fast(int fd, const void *buf, size_t n, off_t off)
{
    if (!n || off < 0 || fd >= MAX_FDS || vacc[fd] == O_RDONLY || !ready() || !gates_usable)
        return -2;
    int limited;
    long long room = fsize_room(off, (long long)n, &limited);
    if (room < 0)
        return -1;
    ssize_t r = try_fast_write(fd, buf, (size_t)room, off, limited);
    if (r == -2 && fill(fd, off))
        r = try_fast_write(fd, buf, (size_t)room, off, limited);
    return r;
}

/* No change that may free an inode is under way: none says so (Store.reaping), or the one
 * that did has ended — the log's writer lock taken and given back. 0 when this process
 * cannot tell (no log, or one it may only read). */
int log_no_reaping(void)
{
    if (!ready())
        return 0;
    if (!field(SHM_REAPING))
        return 1;
    pthread_mutex_t *m = (pthread_mutex_t *)(header + SHM_WRITER);
    if (!gates_usable || gate_take(m))
        return 0;
    pthread_mutex_unlock(m);
    return 1;
}

int log_position(unsigned long long pos[2])
{
    /* only once Python has opened the volume: before, the log may not exist yet, and a
     * failed ready() would turn the fast reads off for good */
    if (!python_ready() || !ready())
        return 0;
    pos[0] = field(SHM_EPOCH);
    pos[1] = field(SHM_TAIL);
    return 1;
}
