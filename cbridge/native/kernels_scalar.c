/* kernels_scalar.c: the plain C reference kernels, the arithmetic contract written out.
 *
 * Each output: the inputs in chains of NNN_CHAIN in ascending order, one fma per input; the
 * first chain starts at the bias, each later one at zero and is then added to the sum so
 * far; then the activation. Every SIMD lane repeats this sequence. Weights come packed in blocks of NB
 * outputs: w[(blk * n_in + i) * NB + l] = W[blk * NB + l][i]. */
#include "native_internal.h"
#include "nnn_math.h"

#define NB_F32 16
#define NB_F64 8

static void act_f32(int act, float *v, int64_t n) {
    if (act == NNN_ACT_TANH)
        for (int64_t i = 0; i < n; ++i) v[i] = nnn_tanh_f32(v[i]);
    else if (act == NNN_ACT_RELU)
        for (int64_t i = 0; i < n; ++i) v[i] = nnn_relu_f32(v[i]);
    else if (act == NNN_ACT_SOFTPLUS)
        for (int64_t i = 0; i < n; ++i) v[i] = nnn_softplus_f32(v[i]);
}

static void act_f64(int act, double *v, int64_t n) {
    if (act == NNN_ACT_TANH)
        for (int64_t i = 0; i < n; ++i) v[i] = nnn_tanh_f64(v[i]);
    else if (act == NNN_ACT_RELU)
        for (int64_t i = 0; i < n; ++i) v[i] = nnn_relu_f64(v[i]);
    else if (act == NNN_ACT_SOFTPLUS)
        for (int64_t i = 0; i < n; ++i) v[i] = nnn_softplus_f64(v[i]);
}

static void dense_f32(const float *w, const float *b, int64_t n_in, int64_t n_pad, int act, const float *x, int64_t ldx,
                      float *y, int64_t ldy, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * ldx;
        for (int64_t o = 0; o < n_pad; ++o) {
            const float *wo = w + (o / NB_F32) * n_in * NB_F32 + o % NB_F32;
            float acc = b[o];
            for (int64_t i0 = 0; i0 < n_in; i0 += NNN_CHAIN) {
                float chain = i0 ? 0 : b[o];
                for (int64_t i = i0; i < n_in && i < i0 + NNN_CHAIN; ++i) chain = fmaf(wo[i * NB_F32], xr[i], chain);
                acc = i0 ? acc + chain : chain;
            }
            y[r * ldy + o] = acc;
        }
        act_f32(act, y + r * ldy, n_pad);
    }
}

static void dense_f64(const double *w, const double *b, int64_t n_in, int64_t n_pad, int act, const double *x,
                      int64_t ldx, double *y, int64_t ldy, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) {
        const double *xr = x + r * ldx;
        for (int64_t o = 0; o < n_pad; ++o) {
            const double *wo = w + (o / NB_F64) * n_in * NB_F64 + o % NB_F64;
            double acc = b[o];
            for (int64_t i0 = 0; i0 < n_in; i0 += NNN_CHAIN) {
                double chain = i0 ? 0 : b[o];
                for (int64_t i = i0; i < n_in && i < i0 + NNN_CHAIN; ++i) chain = fma(wo[i * NB_F64], xr[i], chain);
                acc = i0 ? acc + chain : chain;
            }
            y[r * ldy + o] = acc;
        }
        act_f64(act, y + r * ldy, n_pad);
    }
}

const nnn_kernels nnn_kernels_scalar = {NNN_ISA_SCALAR, dense_f32, dense_f64, act_f32, act_f64};
