/* alloc_counter.c: a heap allocation counter to preload (LD_PRELOAD) into a
 * benchmark driver. It counts every malloc, calloc, realloc, memalign,
 * posix_memalign and aligned_alloc (operator new and libtorch's CPU
 * allocator end in these) and the bytes asked for, and hands the work to
 * glibc. alloc_counter_read() gives the totals; bench_clock.c finds it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static int64_t count_calls = 0;
static int64_t count_bytes = 0;

static void count(size_t bytes) {
    __atomic_add_fetch(&count_calls, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&count_bytes, (int64_t)bytes, __ATOMIC_RELAXED);
}

void alloc_counter_read(int64_t *calls, int64_t *bytes) {
    *calls = __atomic_load_n(&count_calls, __ATOMIC_RELAXED);
    *bytes = __atomic_load_n(&count_bytes, __ATOMIC_RELAXED);
}

void *malloc(size_t size) {
    count(size);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    count(n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    count(size);
    return __libc_realloc(p, size);
}

void *memalign(size_t alignment, size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count(size);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    count(size);
    void *p = __libc_memalign(alignment, size);
    if (p == NULL && size != 0) return ENOMEM;
    *out = p;
    return 0;
}
