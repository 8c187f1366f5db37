/* One short life of a process among others doing the same in DIR, as each sqlite3 shell of
 * a shell loop does: open the database with O_CREAT, create and write its journal, open the
 * directory to sync it, remove the journal. Prints every call that fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char path[4096];

static const char *at(const char *dir, const char *name)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *dir = argv[1];
    int bad = 0;
    int db = open(at(dir, "db"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db < 0 && ++bad)
        printf("open db: %s\n", strerror(errno));
    int j = open(at(dir, "db-journal"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j < 0 && ++bad)
        printf("open journal: %s\n", strerror(errno));
    if (j >= 0 && (write(j, "x", 1) != 1 || fsync(j) < 0) && ++bad)
        printf("write journal: %s\n", strerror(errno));
    int d = open(dir, O_RDONLY | O_CLOEXEC);
    if (d < 0 && ++bad)
        printf("open directory: %s\n", strerror(errno));
    if (d >= 0) {
        fsync(d);
        close(d);
    }
    if (j >= 0)
        close(j);
    if (unlink(at(dir, "db-journal")) < 0 && errno != ENOENT && ++bad)
        printf("unlink journal: %s\n", strerror(errno));
    if (db >= 0)
        close(db);
    return bad != 0;
}
