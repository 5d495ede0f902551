/* bench_native.c: route "native" of the benchmark protocol (README.md), the native kernels
 * (cbridge/native) on preallocated buffers, and the machine's limits in the same process.
 *
 * Usage: bench_native native PROGRAM.nnp DTYPE NIN NOUT THREADS DEVICE DUMPDIR, then the
 * protocol's commands (time, dump, quit) and two more:
 *   peak 0 0 CALLS     single-thread FMA peak: {"peak_gflops_f32":..,"peak_gflops_f64":..}, the
 *                      widest vectors' (AVX-512 where the CPU runs it, else AVX2), and each
 *                      width's own ("peak_avx2_gflops_f32", .., "peak_avx512_gflops_f64")
 *   stream BYTES 0 CALLS  read bandwidth over a BYTES buffer (L2-sized): {"stream_gbs":..}, the
 *                      faster of 32- and 64-byte loads (each: "stream_avx2_gbs", "stream_avx512_gbs")
 *   isa ISA 0 0        run the kernels of nn_native.h's instruction set ISA: {"isa":ISA}
 * THREADS > 1 splits the columns over OpenMP threads (when built with OpenMP), each with
 * its own workspace, from 64 columns on (as the bridge does); DEVICE must be cpu. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn_native.h"

int64_t bench_now_ns(void);

/* CPU time of this thread in ns: what the limits and the kernels' rates are computed from, as
 * on a shared machine wall time also counts other processes' time slices. */
static int64_t cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static nnn_program *prog;
static int threads = 1;
static int64_t nin, nout, ncells, batch = -1;
static size_t elem;
static void *x, *y, *work[64];

static void die(const char *what) {
    fprintf(stderr, "bench_native: %s\n", what);
    exit(1);
}

static void prepare(int64_t b) {
    if (b == batch) return;
    batch = b;
    free(x);
    free(y);
    x = malloc((size_t)(b * nin) * elem);
    y = malloc((size_t)(b * nout) * elem);
    if (!x || !y) die("cannot allocate the buffers");
    for (int64_t k = 0; k < b * nin; ++k) {
        double v = (double)((37 * k) % 101 - 50) / 64.0;
        if (elem == 4) ((float *)x)[k] = (float)v;
        else ((double *)x)[k] = v;
    }
}

/* Fewest columns a thread is given, as in the bridge's native engine: a call of fewer than
 * two grains (or with one thread) runs on the calling thread, without a parallel region. */
#define GRAIN 32

static void call(void) {
    char msg[256];
    int failed = 0;
    if (threads == 1 || batch < 2 * GRAIN) {
        if (nnn_run(prog, work[0], ncells, x, y, 0, batch, msg, sizeof msg) != NNN_OK) die(msg);
        return;
    }
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        int t = 0, n = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        int64_t begin = batch * t / n, end = batch * (t + 1) / n;
        failed |= nnn_run(prog, work[t], ncells, x, y, begin, end, msg, sizeof msg) != NNN_OK;
    }
    if (failed) die("nnn_run failed");
}

static void time_calls(int64_t warmup, int64_t calls) {
    for (int64_t i = 0; i < warmup; ++i) call();
    int64_t *t = malloc((size_t)(calls > 0 ? calls : 1) * sizeof *t);
    if (!t) die("cannot allocate the times");
    int64_t c0 = cpu_ns(); /* over the block: the CPU clock is a system call, too slow per call */
    for (int64_t i = 0; i < calls; ++i) {
        int64_t t0 = bench_now_ns();
        call();
        t[i] = bench_now_ns() - t0;
    }
    double cpu = (double)(cpu_ns() - c0) / (double)(calls > 0 ? calls : 1);
    printf("{\"batch\":%lld,\"t\":[", (long long)batch);
    for (int64_t i = 0; i < calls; ++i) printf("%s%lld", i ? "," : "", (long long)t[i]);
    printf("],\"cpu_per_call\":%.1f}\n", cpu);
    free(t);
}

/* 12 independent FMA chains of 8 floats or 4 doubles: the core's FMA throughput in GFLOP/s
 * (2 per fma), over this thread's CPU time. */
#define PEAK(name, vec, lanes, scalar, fma)                                                                            \
    __attribute__((target("avx2,fma"))) static double name(int64_t iters) {                                            \
        typedef scalar vt __attribute__((vector_size(32)));                                                            \
        vt m, s, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;                                                     \
        for (int k = 0; k < lanes; ++k) {                                                                              \
            m[k] = (scalar)0.999999;                                                                                   \
            s[k] = (scalar)1e-7;                                                                                       \
        }                                                                                                              \
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = s;                                               \
        int64_t t0 = cpu_ns();                                                                                         \
        for (int64_t i = 0; i < iters; ++i) {                                                                          \
            a0 = fma(a0, m, s);                                                                                        \
            a1 = fma(a1, m, s);                                                                                        \
            a2 = fma(a2, m, s);                                                                                        \
            a3 = fma(a3, m, s);                                                                                        \
            a4 = fma(a4, m, s);                                                                                        \
            a5 = fma(a5, m, s);                                                                                        \
            a6 = fma(a6, m, s);                                                                                        \
            a7 = fma(a7, m, s);                                                                                        \
            a8 = fma(a8, m, s);                                                                                        \
            a9 = fma(a9, m, s);                                                                                        \
            a10 = fma(a10, m, s);                                                                                      \
            a11 = fma(a11, m, s);                                                                                      \
            __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4));                                   \
            __asm__ volatile("" : "+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9));                                   \
            __asm__ volatile("" : "+x"(a10), "+x"(a11));                                                               \
        }                                                                                                              \
        double ns = (double)(cpu_ns() - t0);                                                                           \
        volatile scalar sink =                                                                                         \
            a0[0] + a1[0] + a2[0] + a3[0] + a4[0] + a5[0] + a6[0] + a7[0] + a8[0] + a9[0] + a10[0] + a11[0];           \
        (void)sink;                                                                                                    \
        return (double)iters * 12 * lanes * 2 / ns;                                                                    \
    }
PEAK(peak_f32, v8, 8, float, __builtin_ia32_vfmaddps256)
PEAK(peak_f64, v4, 4, double, __builtin_ia32_vfmaddpd256)

/* The same with 16 float or 8 double lanes (zmm registers). */
#define PEAK512(name, vt, lanes, scalar, set1, fma)                                                                    \
    __attribute__((target("avx512f"))) static double name(int64_t iters) {                                             \
        vt m = set1((scalar)0.999999), s = set1((scalar)1e-7);                                                         \
        vt a0 = s, a1 = s, a2 = s, a3 = s, a4 = s, a5 = s, a6 = s, a7 = s, a8 = s, a9 = s, a10 = s, a11 = s;           \
        int64_t t0 = cpu_ns();                                                                                         \
        for (int64_t i = 0; i < iters; ++i) {                                                                          \
            a0 = fma(a0, m, s);                                                                                        \
            a1 = fma(a1, m, s);                                                                                        \
            a2 = fma(a2, m, s);                                                                                        \
            a3 = fma(a3, m, s);                                                                                        \
            a4 = fma(a4, m, s);                                                                                        \
            a5 = fma(a5, m, s);                                                                                        \
            a6 = fma(a6, m, s);                                                                                        \
            a7 = fma(a7, m, s);                                                                                        \
            a8 = fma(a8, m, s);                                                                                        \
            a9 = fma(a9, m, s);                                                                                        \
            a10 = fma(a10, m, s);                                                                                      \
            a11 = fma(a11, m, s);                                                                                      \
            __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4));                                   \
            __asm__ volatile("" : "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9));                                   \
            __asm__ volatile("" : "+v"(a10), "+v"(a11));                                                               \
        }                                                                                                              \
        double ns = (double)(cpu_ns() - t0);                                                                           \
        volatile scalar sink =                                                                                         \
            a0[0] + a1[0] + a2[0] + a3[0] + a4[0] + a5[0] + a6[0] + a7[0] + a8[0] + a9[0] + a10[0] + a11[0];           \
        (void)sink;                                                                                                    \
        return (double)iters * 12 * lanes * 2 / ns;                                                                    \
    }
PEAK512(peak512_f32, __m512, 16, float, _mm512_set1_ps, _mm512_fmadd_ps)
PEAK512(peak512_f64, __m512d, 8, double, _mm512_set1_pd, _mm512_fmadd_pd)

static int has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

/* Read bandwidth over a buffer of `bytes` (sized to stay in L2) with `width`-byte loads, 8
 * independent sums, over this thread's CPU time: stream (ymm) and stream512 (zmm). */
#define STREAM(name, isa, width)                                                                                       \
    __attribute__((target(isa))) static double name(int64_t bytes, int64_t reps) {                                     \
        typedef float vec __attribute__((vector_size(width)));                                                         \
        const int64_t n = bytes / (8 * (width)) * 8; /* whole groups of 8 vectors */                                   \
        vec *buf = aligned_alloc(64, (size_t)n * (width)), a0 = {0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,      \
            a6 = a0, a7 = a0;                                                                                          \
        for (int64_t k = 0; k < n; ++k) buf[k] = a0 + 1.0f;                                                            \
        int64_t t0 = 0;                                                                                                \
        for (int64_t r = -1; r < reps; ++r) {                                                                          \
            if (r == 0) t0 = cpu_ns();                                                                                 \
            for (int64_t k = 0; k < n; k += 8) {                                                                       \
                a0 += buf[k];                                                                                          \
                a1 += buf[k + 1];                                                                                      \
                a2 += buf[k + 2];                                                                                      \
                a3 += buf[k + 3];                                                                                      \
                a4 += buf[k + 4];                                                                                      \
                a5 += buf[k + 5];                                                                                      \
                a6 += buf[k + 6];                                                                                      \
                a7 += buf[k + 7];                                                                                      \
            }                                                                                                          \
            __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7));     \
        }                                                                                                              \
        double ns = (double)(cpu_ns() - t0);                                                                           \
        free(buf);                                                                                                     \
        return (double)n * (width) * (double)reps / ns;                                                                \
    }
STREAM(stream, "avx2", 32)
STREAM(stream512, "avx512f", 64)

static void load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open the program");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    void *data = malloc((size_t)size);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) die("cannot read the program");
    fclose(f);
    char msg[512];
    if (nnn_load(data, (size_t)size, &prog, msg, sizeof msg) != NNN_OK) die(msg);
    free(data);
}

int main(int argc, char **argv) {
    if (argc != 9) die("usage: bench_native native PROGRAM DTYPE NIN NOUT THREADS DEVICE DUMPDIR");
    load(argv[2]);
    elem = nnn_dtype(prog) == NNN_F32 ? 4 : 8;
    nin = atoll(argv[4]);
    nout = atoll(argv[5]);
    threads = atoi(argv[6]);
    if (strcmp(argv[3], elem == 4 ? "float32" : "float64") != 0) die("DTYPE is not the program's");
    if (strcmp(argv[7], "cpu") != 0 || threads < 1 || threads > 64) die("DEVICE must be cpu, THREADS 1 to 64");
    int64_t per_in, per_out;
    nnn_sizes(prog, 1, &per_in, &per_out);
    ncells = nnn_is_window(prog) ? nin / per_in : 0;
    if (nnn_sizes(prog, ncells, &per_in, &per_out) != NNN_OK || per_in != nin || per_out != nout)
        die("NIN and NOUT are not the program's sizes");
    for (int t = 0; t < threads; ++t)
        if (!(work[t] = malloc(nnn_workspace_size(prog)))) die("cannot allocate a workspace");
    printf("{\"ready\":1,\"route\":\"native\",\"threads\":%d,\"isa\":%d}\n", threads, nnn_isa(prog));
    fflush(stdout);
    char op[16];
    long long b, warm, calls;
    while (scanf("%15s", op) == 1 && strcmp(op, "quit") != 0) {
        if (scanf("%lld %lld %lld", &b, &warm, &calls) != 3) die("bad command");
        if (!strcmp(op, "peak")) {
            const double f32 = peak_f32(calls), f64 = peak_f64(calls);
            if (has_avx512()) {
                const double w32 = peak512_f32(calls), w64 = peak512_f64(calls);
                printf(
                    "{\"peak_gflops_f32\":%.3f,\"peak_gflops_f64\":%.3f,\"peak_avx2_gflops_f32\":%.3f,"
                    "\"peak_avx2_gflops_f64\":%.3f,\"peak_avx512_gflops_f32\":%.3f,\"peak_avx512_gflops_f64\":%.3f}\n",
                    w32 > f32 ? w32 : f32, w64 > f64 ? w64 : f64, f32, f64, w32, w64);
            } else {
                printf("{\"peak_gflops_f32\":%.3f,\"peak_gflops_f64\":%.3f,\"peak_avx2_gflops_f32\":%.3f,"
                       "\"peak_avx2_gflops_f64\":%.3f}\n",
                       f32, f64, f32, f64);
            }
        } else if (!strcmp(op, "stream")) {
            const double narrow = stream(b, calls), wide = has_avx512() ? stream512(b, calls) : 0;
            printf("{\"bytes\":%lld,\"stream_gbs\":%.3f,\"stream_avx2_gbs\":%.3f", b, wide > narrow ? wide : narrow,
                   narrow);
            if (has_avx512()) printf(",\"stream_avx512_gbs\":%.3f", wide);
            printf("}\n");
        } else if (!strcmp(op, "isa")) {
            char msg[256];
            if (nnn_set_isa(prog, (int)b, msg, sizeof msg) != NNN_OK) die(msg);
            printf("{\"isa\":%d}\n", nnn_isa(prog));
        } else if (b < 1) {
            die("bad batch");
        } else if (!strcmp(op, "time")) {
            prepare(b);
            time_calls(warm, calls);
        } else if (!strcmp(op, "dump")) {
            prepare(b);
            call();
            char path[4096];
            snprintf(path, sizeof path, "%s/native-%lld.bin", argv[8], b);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(y, elem, (size_t)(b * nout), f) != (size_t)(b * nout)) die("cannot write the dump");
            fclose(f);
            printf("{\"dump\":\"%s\"}\n", path);
        } else {
            die("unknown command");
        }
        fflush(stdout);
    }
    nnn_program *p = prog;
    nnn_free(p);
    return 0;
}
