/* bench_clock.c: what the benchmark drivers (C++ and Fortran) take from C:
 * a monotonic clock in nanoseconds, the allocation counters of
 * alloc_counter.c when that library is preloaded, and the heap in use. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <time.h>

/** Monotonic time in nanoseconds. */
int64_t bench_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

typedef void (*read_fn)(int64_t *, int64_t *);

/** Heap allocations and bytes requested so far, from alloc_counter.c when it
 *  is preloaded (LD_PRELOAD); returns -1 (and -1 counts) when it is not. */
int bench_alloc_counts(int64_t *calls, int64_t *bytes) {
    static read_fn fn = NULL;
    static int looked = 0;
    if (!looked) {
        fn = (read_fn)dlsym(RTLD_DEFAULT, "alloc_counter_read");
        looked = 1;
    }
    if (fn == NULL) {
        *calls = -1;
        *bytes = -1;
        return -1;
    }
    fn(calls, bytes);
    return 0;
}

/** Bytes of heap in use (all malloc arenas plus mmapped blocks). */
int64_t bench_heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return (int64_t)(m.uordblks + m.hblkhd);
}
