/* native_kernels.c: every kernel table this CPU runs against the scalar reference, bit for bit,
 * on every register tile shape: dense layers of 1 to 29 rows x 1 to 10 output blocks x input
 * widths around the chain length, each activation, float32 and float64, with rows strided as
 * in a run's workspace; the elementwise activations on every length up to 40.
 * Prints {"isas":[..],"cases":N,"mismatches":M}; exits 1 on a mismatch. Links the native
 * sources (it uses the internal kernel table, native_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "native_internal.h"

static uint64_t state = 88172645463325252ull;

static double uniform(void) { /* xorshift64 in [-2, 2) */
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0 * 4.0 - 2.0;
}

#define CHECK(T, SFX, NB)                                                                                              \
    static long check_##SFX(const nnn_kernels *k, int64_t rows, int64_t nblk, int64_t n_in, int act) {                 \
        const int64_t n_pad = nblk * NB, ldx = n_in + 3, ldy = n_pad + NB;                                             \
        T *w = malloc(sizeof(T) * (size_t)(n_pad * n_in)), *b = malloc(sizeof(T) * (size_t)n_pad);                     \
        T *x = malloc(sizeof(T) * (size_t)(rows * ldx));                                                               \
        T *y0 = calloc((size_t)(rows * ldy), sizeof(T)), *y1 = calloc((size_t)(rows * ldy), sizeof(T));                \
        for (int64_t i = 0; i < n_pad * n_in; ++i) w[i] = (T)(uniform() / 4);                                          \
        for (int64_t i = 0; i < n_pad; ++i) b[i] = (T)uniform();                                                       \
        for (int64_t i = 0; i < rows * ldx; ++i) x[i] = (T)(uniform() * 3);                                            \
        nnn_kernels_scalar.dense_##SFX(w, b, n_in, n_pad, act, x, ldx, y0, ldy, rows);                                 \
        k->dense_##SFX(w, b, n_in, n_pad, act, x, ldx, y1, ldy, rows);                                                 \
        long bad = memcmp(y0, y1, sizeof(T) * (size_t)(rows * ldy)) != 0;                                              \
        free(w), free(b), free(x), free(y0), free(y1);                                                                 \
        return bad;                                                                                                    \
    }                                                                                                                  \
    static long check_act_##SFX(const nnn_kernels *k, int act, int64_t n) {                                            \
        T v0[64], v1[64];                                                                                              \
        for (int64_t i = 0; i < n; ++i) v0[i] = v1[i] = (T)(uniform() * 12);                                           \
        v0[n] = v1[n] = (T)1e30; /* past the end: must stay as it is */                                                \
        nnn_kernels_scalar.act_##SFX(act, v0, n);                                                                      \
        k->act_##SFX(act, v1, n);                                                                                      \
        return memcmp(v0, v1, sizeof(T) * (size_t)(n + 1)) != 0 || v1[n] != (T)1e30;                                   \
    }
CHECK(float, f32, 16)
CHECK(double, f64, 8)

int main(void) {
    static const int isas[] = {NNN_ISA_AVX2, NNN_ISA_AVX512};
    static const int64_t widths[] = {1, 5, 15, 16, 17, 31, 32, 33, 47, 50};
    long cases = 0, mismatches = 0;
    printf("{\"isas\":[");
    int listed = 0;
    for (size_t s = 0; s < sizeof isas / sizeof *isas; ++s) {
        const nnn_kernels *k = nnn_kernels_for(isas[s]);
        if (!k) continue;
        printf("%s%d", listed++ ? "," : "", isas[s]);
        for (int act = 0; act <= NNN_ACT_LAST; ++act) {
            for (int64_t rows = 1; rows < 30; ++rows)
                for (int64_t nblk = 1; nblk <= 10; ++nblk)
                    for (size_t iw = 0; iw < sizeof widths / sizeof *widths; ++iw) {
                        long bad =
                            check_f32(k, rows, nblk, widths[iw], act) + check_f64(k, rows, nblk, widths[iw], act);
                        if (bad)
                            fprintf(stderr, "isa %d act %d: %lld rows x %lld blocks x %lld inputs differ\n", isas[s],
                                    act, (long long)rows, (long long)nblk, (long long)widths[iw]);
                        mismatches += bad;
                        cases += 2;
                    }
            for (int64_t n = 0; n <= 40; ++n) {
                mismatches += check_act_f32(k, act, n) + check_act_f64(k, act, n);
                cases += 2;
            }
        }
    }
    printf("],\"cases\":%ld,\"mismatches\":%ld}\n", cases, mismatches);
    return mismatches != 0;
}
