/* kernels_avx2.c: AVX2 + FMA kernels (this file alone is compiled with -mavx2 -mfma).
 *
 * Register blocking: 6 rows x 16 float (or 8 double) outputs in 12 accumulators, weights
 * packed per block of outputs (kernels_scalar.c). Each lane runs exactly the scalar chain
 * of nnn_math.h and kernels_scalar.c, so the bits are the reference's. */
#include <immintrin.h>

#include "native_internal.h"
#include "nnn_math.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m256 exp_neg_f32x8(__m256 y) {
    const __m256 round = _mm256_set1_ps(NNN_ROUND_F32);
    __m256 k = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(y, _mm256_set1_ps(NNN_LOG2E_F32)), round), round);
    __m256 r = _mm256_fmadd_ps(k, _mm256_set1_ps(-NNN_LN2_HI_F32), y);
    r = _mm256_fmadd_ps(k, _mm256_set1_ps(-NNN_LN2_LO_F32), r);
    __m256 p = _mm256_set1_ps(NNN_EXP_F32[7]);
    for (int j = 6; j >= 0; --j) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NNN_EXP_F32[j]));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

INLINE __m256 tanh_f32x8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 a = _mm256_andnot_ps(sign, x), s = _mm256_mul_ps(a, a);
    __m256 p = _mm256_set1_ps(NNN_TANH_F32[7]);
    for (int j = 6; j >= 0; --j) p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(NNN_TANH_F32[j]));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(a, s), p, a);
    __m256 c = _mm256_min_ps(a, _mm256_set1_ps(NNN_TANH_CLAMP_F32)); /* NaN -> clamp, as a < c ? a : c */
    __m256 t = exp_neg_f32x8(_mm256_mul_ps(c, _mm256_set1_ps(-2.0f)));
    __m256 large = _mm256_div_ps(_mm256_sub_ps(one, t), _mm256_add_ps(one, t));
    __m256 r = _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(NNN_TANH_SMALL_F32), _CMP_LT_OQ));
    r = _mm256_or_ps(_mm256_andnot_ps(sign, r), _mm256_and_ps(sign, x));
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

INLINE __m256d exp_neg_f64x4(__m256d y) {
    const __m256d round = _mm256_set1_pd(NNN_ROUND_F64);
    __m256d kr = _mm256_add_pd(_mm256_mul_pd(y, _mm256_set1_pd(NNN_LOG2E_F64)), round);
    __m256d k = _mm256_sub_pd(kr, round);
    __m256d r = _mm256_fmadd_pd(k, _mm256_set1_pd(-NNN_LN2_HI_F64), y);
    r = _mm256_fmadd_pd(k, _mm256_set1_pd(-NNN_LN2_LO_F64), r);
    __m256d p = _mm256_set1_pd(NNN_EXP_F64[13]);
    for (int j = 12; j >= 0; --j) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(NNN_EXP_F64[j]));
    /* kr's low mantissa bits hold 2^51 + k: adding 1023 and shifting by 52 leaves (k + 1023) << 52 */
    __m256i e = _mm256_slli_epi64(_mm256_add_epi64(_mm256_castpd_si256(kr), _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(e));
}

INLINE __m256d tanh_f64x4(__m256d x) {
    const __m256d sign = _mm256_set1_pd(-0.0), one = _mm256_set1_pd(1.0);
    __m256d a = _mm256_andnot_pd(sign, x), s = _mm256_mul_pd(a, a);
    __m256d p = _mm256_set1_pd(NNN_TANH_F64[12]);
    for (int j = 11; j >= 0; --j) p = _mm256_fmadd_pd(p, s, _mm256_set1_pd(NNN_TANH_F64[j]));
    __m256d small = _mm256_fmadd_pd(_mm256_mul_pd(a, s), p, a);
    __m256d c = _mm256_min_pd(a, _mm256_set1_pd(NNN_TANH_CLAMP_F64));
    __m256d t = exp_neg_f64x4(_mm256_mul_pd(c, _mm256_set1_pd(-2.0)));
    __m256d large = _mm256_div_pd(_mm256_sub_pd(one, t), _mm256_add_pd(one, t));
    __m256d r = _mm256_blendv_pd(large, small, _mm256_cmp_pd(a, _mm256_set1_pd(NNN_TANH_SMALL_F64), _CMP_LT_OQ));
    r = _mm256_or_pd(_mm256_andnot_pd(sign, r), _mm256_and_pd(sign, x));
    return _mm256_blendv_pd(r, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}

INLINE __m256 act_f32x8(int act, __m256 v) {
    if (act == NNN_ACT_TANH) return tanh_f32x8(v);
    if (act == NNN_ACT_RELU) {
        __m256 pos = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
        return _mm256_blendv_ps(pos, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    return v;
}

INLINE __m256d act_f64x4(int act, __m256d v) {
    if (act == NNN_ACT_TANH) return tanh_f64x4(v);
    if (act == NNN_ACT_RELU) {
        __m256d pos = _mm256_and_pd(v, _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_GT_OQ));
        return _mm256_blendv_pd(pos, v, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
    }
    return v;
}

static void act_f32(int act, float *v, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(v + i, act_f32x8(act, _mm256_loadu_ps(v + i)));
    nnn_kernels_scalar.act_f32(act, v + i, n - i);
}

static void act_f64(int act, double *v, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(v + i, act_f64x4(act, _mm256_loadu_pd(v + i)));
    nnn_kernels_scalar.act_f64(act, v + i, n - i);
}

/* nr rows (a constant after inlining) x 16 outputs. */
INLINE void block_f32(const float *w, const float *b, int64_t n_in, int act, const float *x,
                      int64_t ldx, float *y, int64_t ldy, const int nr) {
    __m256 lo[6], hi[6];
    for (int r = 0; r < nr; ++r) {
        lo[r] = _mm256_loadu_ps(b);
        hi[r] = _mm256_loadu_ps(b + 8);
    }
    for (int64_t i = 0; i < n_in; ++i) {
        const __m256 w0 = _mm256_loadu_ps(w + 16 * i), w1 = _mm256_loadu_ps(w + 16 * i + 8);
        for (int r = 0; r < nr; ++r) {
            const __m256 xv = _mm256_broadcast_ss(x + r * ldx + i);
            lo[r] = _mm256_fmadd_ps(w0, xv, lo[r]);
            hi[r] = _mm256_fmadd_ps(w1, xv, hi[r]);
        }
    }
    for (int r = 0; r < nr; ++r) {
        _mm256_storeu_ps(y + r * ldy, act_f32x8(act, lo[r]));
        _mm256_storeu_ps(y + r * ldy + 8, act_f32x8(act, hi[r]));
    }
}

INLINE void block_f64(const double *w, const double *b, int64_t n_in, int act, const double *x,
                      int64_t ldx, double *y, int64_t ldy, const int nr) {
    __m256d lo[6], hi[6];
    for (int r = 0; r < nr; ++r) {
        lo[r] = _mm256_loadu_pd(b);
        hi[r] = _mm256_loadu_pd(b + 4);
    }
    for (int64_t i = 0; i < n_in; ++i) {
        const __m256d w0 = _mm256_loadu_pd(w + 8 * i), w1 = _mm256_loadu_pd(w + 8 * i + 4);
        for (int r = 0; r < nr; ++r) {
            const __m256d xv = _mm256_broadcast_sd(x + r * ldx + i);
            lo[r] = _mm256_fmadd_pd(w0, xv, lo[r]);
            hi[r] = _mm256_fmadd_pd(w1, xv, hi[r]);
        }
    }
    for (int r = 0; r < nr; ++r) {
        _mm256_storeu_pd(y + r * ldy, act_f64x4(act, lo[r]));
        _mm256_storeu_pd(y + r * ldy + 4, act_f64x4(act, hi[r]));
    }
}

#define ROW_BLOCKS(block, w, b, n_in, act, x, ldx, y, ldy, rows)                          \
    for (int64_t r0 = 0; r0 < (rows); r0 += 6) {                                         \
        const int64_t left = (rows) - r0;                                                \
        const void *xa = (x) + r0 * (ldx);                                               \
        switch (left >= 6 ? 6 : (int)left) {                                             \
        case 6: block(w, b, n_in, act, xa, ldx, (y) + r0 * (ldy), ldy, 6); break;        \
        case 5: block(w, b, n_in, act, xa, ldx, (y) + r0 * (ldy), ldy, 5); break;        \
        case 4: block(w, b, n_in, act, xa, ldx, (y) + r0 * (ldy), ldy, 4); break;        \
        case 3: block(w, b, n_in, act, xa, ldx, (y) + r0 * (ldy), ldy, 3); break;        \
        case 2: block(w, b, n_in, act, xa, ldx, (y) + r0 * (ldy), ldy, 2); break;        \
        default: block(w, b, n_in, act, xa, ldx, (y) + r0 * (ldy), ldy, 1); break;       \
        }                                                                                \
    }

static void dense_f32(const float *w, const float *b, int64_t n_in, int64_t n_pad, int act,
                      const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows) {
    for (int64_t o = 0; o < n_pad; o += 16) {
        const float *wb = w + o * n_in, *bb = b + o;
        float *yb = y + o;
        ROW_BLOCKS(block_f32, wb, bb, n_in, act, x, ldx, yb, ldy, rows)
    }
}

static void dense_f64(const double *w, const double *b, int64_t n_in, int64_t n_pad, int act,
                      const double *x, int64_t ldx, double *y, int64_t ldy, int64_t rows) {
    for (int64_t o = 0; o < n_pad; o += 8) {
        const double *wb = w + o * n_in, *bb = b + o;
        double *yb = y + o;
        ROW_BLOCKS(block_f64, wb, bb, n_in, act, x, ldx, yb, ldy, rows)
    }
}

const nnn_kernels nnn_kernels_avx2 = {NNN_ISA_AVX2, dense_f32, dense_f64, act_f32, act_f64};
