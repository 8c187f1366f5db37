/* 32 threads make their first image call at the same instant (a barrier), each an open
 * and a write: the first image call of a process starts the embedded Python.
 *
 *     start_race DIR     (prints "errors N")
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
static pthread_barrier_t b;
static const char *dir;
static int errors;
static void *run(void *arg)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/s%ld", dir, (long)arg);
    pthread_barrier_wait(&b);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || write(fd, "x", 1) != 1) __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
    if (fd >= 0) close(fd);
    return NULL;
}
int main(int argc, char **argv)
{
    dir = argv[1];
    enum { N = 32 };
    pthread_t t[N];
    pthread_barrier_init(&b, NULL, N);
    for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    printf("errors %d\n", errors);
    return errors != 0;
}
