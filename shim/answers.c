/* Answers by path kept while nothing changed. A stat, or an open that changes no metadata,
 * is a function of the metadata, the path, a key (an open's flags) and who asks (the walk's
 * search permissions), and every metadata change moves the shared log; reads, and
 * overwrites within the mtime's clock tick, change neither. So Python's answer taken at a
 * log position holds while the log stays there, for the same effective ids. The caller
 * reads the position before Python answers: Python has caught up at least that far, and if
 * the log moved meanwhile the entry never matches. Failures are kept the same way. */
#include "interpose.h"
#include <pthread.h>

enum { SLOTS = 512, PATH_KEPT = 232, VALUES = 16 };

struct answer {
    char path[PATH_KEPT];
    unsigned long long epoch, tail;
    uid_t uid;
    gid_t gid;
    int key;
    int err;                        /* 0, or the errno of the answer */
    int n;
    long long v[VALUES];
};

static struct {
    struct answer slot[SLOTS];
    pthread_mutex_t lock;
} tables[] = {[ANSWERS_STAT] = {.lock = PTHREAD_MUTEX_INITIALIZER},
              [ANSWERS_OPEN] = {.lock = PTHREAD_MUTEX_INITIALIZER}};

/* a child whose parent was remembering an answer at the fork forgets that table */
static void child_answers(void)
{
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        if (reclaim_after_fork(&tables[t].lock))
            memset(tables[t].slot, 0, sizeof tables[t].slot);
}

__attribute__((constructor)) static void answers_init(void) { pthread_atfork(NULL, NULL, child_answers); }

static struct answer *slot_of(int table, const char *ip, int key)
{
    unsigned h = 2166136261u ^ (unsigned)key;       /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)ip; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &tables[table].slot[h % SLOTS];
}

int answer_lookup(int table, const char *ip, int key, const unsigned long long pos[2], long long *v, int n)
{
    if (strlen(ip) >= PATH_KEPT || n > VALUES)
        return 0;
    struct answer *s = slot_of(table, ip, key);
    int hit = 0;
    pthread_mutex_lock(&tables[table].lock);
    if (s->n == n && s->key == key && s->epoch == pos[0] && s->tail == pos[1] && s->uid == geteuid()
        && s->gid == getegid() && !strcmp(s->path, ip)) {
        if (s->err) {
            errno = s->err;
            hit = -1;
        } else {
            memcpy(v, s->v, sizeof *v * (size_t)n);
            hit = 1;
        }
    }
    pthread_mutex_unlock(&tables[table].lock);
    return hit;
}

void answer_remember(int table, const char *ip, int key, const unsigned long long pos[2], const long long *v,
                     int n, int err)
{
    if (strlen(ip) >= PATH_KEPT || n > VALUES)
        return;
    struct answer *s = slot_of(table, ip, key);
    pthread_mutex_lock(&tables[table].lock);
    strcpy(s->path, ip);
    s->epoch = pos[0];
    s->tail = pos[1];
    s->uid = geteuid();
    s->gid = getegid();
    s->key = key;
    s->err = err;
    s->n = n;
    if (!err)
        memcpy(s->v, v, sizeof *v * (size_t)n);
    pthread_mutex_unlock(&tables[table].lock);
}
