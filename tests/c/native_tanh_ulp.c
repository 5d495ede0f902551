/* native_tanh_ulp.c: the native tanh's error in ulp against tanhl, and scalar == SIMD.
 *
 * float32: every float in [0, 10] (tanh is odd by construction: the sign is copied);
 * float64: a dense sweep of N points, geometric from 1e-300 and uniform to 20.
 * Prints one JSON line; exits 1 if a bit of the widest SIMD kernels this CPU runs (AVX-512,
 * else AVX2) differs from the scalar reference.
 * Build: cc -O2 native_tanh_ulp.c -I../../cbridge/native libnnnative.a -lm */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_native.h"

#define CHUNK 65536

static double ulp_error_f32(float got, long double ref) {
    int e;
    frexpl(ref, &e);
    long double ulp = ldexpl(1.0L, (e - 24) < -149 ? -149 : e - 24);
    return (double)(fabsl((long double)got - ref) / ulp);
}

static double ulp_error_f64(double got, long double ref) {
    int e;
    frexpl(ref, &e);
    long double ulp = ldexpl(1.0L, (e - 53) < -1074 ? -1074 : e - 53);
    return (double)(fabsl((long double)got - ref) / ulp);
}

int main(int argc, char **argv) {
    int isa = NNN_ISA_AVX512; /* the widest SIMD kernels this CPU runs */
    long n64 = argc > 1 ? atol(argv[1]) : 20000000;
    float *a = malloc(CHUNK * sizeof *a), *b = malloc(CHUNK * sizeof *b);
    double *c = malloc(CHUNK * sizeof *c), *d = malloc(CHUNK * sizeof *d);
    double worst32 = 0, at32 = 0, worst64 = 0, at64 = 0;
    long mismatches = 0;
    if (nnn_activation(isa, NNN_F32, 1, a, 0) != NNN_OK) isa = NNN_ISA_AVX2;
    if (nnn_activation(isa, NNN_F32, 1, a, 0) != NNN_OK) isa = NNN_ISA_SCALAR;
    uint32_t top;
    float ten = 10.0f;
    memcpy(&top, &ten, 4);
    for (uint64_t u = 0; u <= top; u += CHUNK) {
        int n = 0;
        for (; n < CHUNK && u + n <= top; ++n) {
            uint32_t bits = (uint32_t)(u + n);
            memcpy(&a[n], &bits, 4);
        }
        memcpy(b, a, n * sizeof *a);
        nnn_activation(NNN_ISA_SCALAR, NNN_F32, 1, a, n);
        nnn_activation(isa, NNN_F32, 1, b, n);
        for (int k = 0; k < n; ++k) {
            uint32_t bits = (uint32_t)(u + k);
            float x;
            memcpy(&x, &bits, 4);
            mismatches += memcmp(&a[k], &b[k], 4) != 0;
            double err = ulp_error_f32(a[k], tanhl((long double)x));
            if (err > worst32) {
                worst32 = err;
                at32 = x;
            }
        }
    }
    for (long i = 0; i < n64; i += CHUNK) {
        int n = 0;
        for (; n < CHUNK && i + n < n64; ++n) {
            long j = i + n;
            c[n] = j % 2 ? 20.0 * (double)j / (double)n64 : 1e-300 * pow(2e301, (double)j / (double)n64);
        }
        memcpy(d, c, n * sizeof *c);
        double x0[CHUNK];
        memcpy(x0, c, n * sizeof *c);
        nnn_activation(NNN_ISA_SCALAR, NNN_F64, 1, c, n);
        nnn_activation(isa, NNN_F64, 1, d, n);
        for (int k = 0; k < n; ++k) {
            mismatches += memcmp(&c[k], &d[k], 8) != 0;
            double err = ulp_error_f64(c[k], tanhl((long double)x0[k]));
            if (err > worst64) {
                worst64 = err;
                at64 = x0[k];
            }
        }
    }
    printf("{\"isa\":%d,\"float32_max_ulp\":%.3f,\"float32_at\":%.9g,\"float64_points\":%ld,"
           "\"float64_max_ulp\":%.3f,\"float64_at\":%.17g,\"simd_bits_differ\":%ld}\n",
           isa, worst32, at32, n64, worst64, at64, mismatches);
    return mismatches != 0;
}
