/* What the benchmark programs share: a monotonic clock in seconds, and dying loudly. */
#ifndef PYFALLOC_BENCH_TIMING_H
#define PYFALLOC_BENCH_TIMING_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static inline void die(const char *what)
{
    perror(what);
    exit(1);
}
#endif
