/* native_softplus_ulp.c: the native softplus's error in ulp against long double, and
 * scalar == SIMD.
 *
 * The reference is torch's softplus: x beyond the threshold 20, else log1pl(expl(x)).
 * float32: every STRIDE-th float from -104 (where softplus underflows) to 24 (STRIDE = argv[2],
 * default 1: every float);
 * float64: N points uniform in [-750, 25] and N geometric on each side of 0 (1e-300 to 750).
 * At and below the contract's low end (-87.5 float, -708 double) the true value is below the
 * smallest normal number and the native softplus gives 0: those points count as "flushed"
 * (and fail the run if the result is not 0); the ulp error is measured above them.
 * Prints one JSON line; exits 1 if a bit of the widest SIMD kernels this CPU runs (AVX-512,
 * else AVX2) differs from the scalar reference.
 * Build: cc -O2 native_softplus_ulp.c -I../../cbridge/native libnnnative.a -lm */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_native.h"

#define CHUNK 65536
#define SOFTPLUS 3

static long double reference(long double x) { return x > 20 ? x : log1pl(expl(x)); }

static double ulp_error(long double got, long double ref, int digits, int lowest) {
    int e;
    frexpl(ref, &e);
    long double ulp = ldexpl(1.0L, (e - digits) < lowest ? lowest : e - digits);
    return (double)(fabsl(got - ref) / ulp);
}

typedef struct {
    double worst, at;
    long mismatches, points, flushed;
} tally;

static void check_f32(int isa, float *a, float *b, int n, tally *t) {
    float *x = malloc((size_t)n * sizeof *x);
    memcpy(x, a, (size_t)n * sizeof *a);
    memcpy(b, a, (size_t)n * sizeof *a);
    nnn_activation(NNN_ISA_SCALAR, NNN_F32, SOFTPLUS, a, n);
    nnn_activation(isa, NNN_F32, SOFTPLUS, b, n);
    for (int k = 0; k < n; ++k) {
        t->mismatches += memcmp(&a[k], &b[k], 4) != 0;
        if (x[k] <= -87.5f) {
            t->flushed++;
            t->mismatches += a[k] != 0.0f;
            continue;
        }
        double err = ulp_error(a[k], reference(x[k]), 24, -149);
        if (err > t->worst) {
            t->worst = err;
            t->at = x[k];
        }
    }
    t->points += n;
    free(x);
}

static void check_f64(int isa, double *c, double *d, int n, tally *t) {
    double *x = malloc((size_t)n * sizeof *x);
    memcpy(x, c, (size_t)n * sizeof *c);
    memcpy(d, c, (size_t)n * sizeof *c);
    nnn_activation(NNN_ISA_SCALAR, NNN_F64, SOFTPLUS, c, n);
    nnn_activation(isa, NNN_F64, SOFTPLUS, d, n);
    for (int k = 0; k < n; ++k) {
        t->mismatches += memcmp(&c[k], &d[k], 8) != 0;
        if (x[k] <= -708.0) {
            t->flushed++;
            t->mismatches += c[k] != 0.0;
            continue;
        }
        double err = ulp_error(c[k], reference(x[k]), 53, -1074);
        if (err > t->worst) {
            t->worst = err;
            t->at = x[k];
        }
    }
    t->points += n;
    free(x);
}

int main(int argc, char **argv) {
    int isa = NNN_ISA_AVX512; /* the widest SIMD kernels this CPU runs */
    long n64 = argc > 1 ? atol(argv[1]) : 10000000;
    uint64_t stride = argc > 2 ? (uint64_t)atol(argv[2]) : 1;
    float *a = malloc(CHUNK * sizeof *a), *b = malloc(CHUNK * sizeof *b);
    double *c = malloc(CHUNK * sizeof *c), *d = malloc(CHUNK * sizeof *d);
    tally t32 = {0}, t64 = {0};
    if (nnn_activation(isa, NNN_F32, SOFTPLUS, a, 0) != NNN_OK) isa = NNN_ISA_AVX2;
    if (nnn_activation(isa, NNN_F32, SOFTPLUS, a, 0) != NNN_OK) isa = NNN_ISA_SCALAR;
    /* float32 in increasing order from -104 to 24: negative floats by decreasing bits, then positive */
    float lo = -104.0f, hi = 24.0f;
    uint32_t lo_bits, hi_bits;
    memcpy(&lo_bits, &lo, 4);
    memcpy(&hi_bits, &hi, 4);
    for (int side = 0; side < 2; ++side) {
        uint64_t end = side == 0 ? lo_bits - 0x80000000u : hi_bits;
        for (uint64_t u = 0; u <= end; u += CHUNK * stride) {
            int n = 0;
            for (; n < CHUNK && u + n * stride <= end; ++n) {
                uint32_t bits = (uint32_t)(u + n * stride) | (side == 0 ? 0x80000000u : 0);
                memcpy(&a[n], &bits, 4);
            }
            check_f32(isa, a, b, n, &t32);
        }
    }
    for (long i = 0; i < 3 * n64; i += CHUNK) {
        int n = 0;
        for (; n < CHUNK && i + n < 3 * n64; ++n) {
            long j = i + n, part = j % 3;
            double f = (double)(j / 3) / (double)n64, g = 1e-300 * pow(7.5e302, f);
            c[n] = part == 0 ? -750.0 + 775.0 * f : part == 1 ? g : -g;
        }
        check_f64(isa, c, d, n, &t64);
    }
    printf("{\"isa\":%d,\"float32_points\":%ld,\"float32_max_ulp\":%.3f,\"float32_at\":%.9g,"
           "\"float64_points\":%ld,\"float64_max_ulp\":%.3f,\"float64_at\":%.17g,\"flushed\":%ld,"
           "\"simd_bits_differ\":%ld}\n",
           isa, t32.points, t32.worst, t32.at, t64.points, t64.worst, t64.at, t32.flushed + t64.flushed,
           t32.mismatches + t64.mismatches);
    return t32.mismatches + t64.mismatches != 0;
}
