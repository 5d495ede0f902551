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

/* softplus lane by lane as nnn_softplus_f32/f64 (nnn_math.h). */
INLINE __m256 softplus_f32x8(__m256 x) {
    const __m256 low = _mm256_set1_ps(NNN_SOFTPLUS_LOW_F32), zero = _mm256_setzero_ps();
    __m256 y = _mm256_or_ps(x, _mm256_set1_ps(-0.0f));
    __m256 above = _mm256_cmp_ps(y, low, _CMP_GT_OQ);
    __m256 t = _mm256_and_ps(exp_neg_f32x8(_mm256_blendv_ps(low, y, above)), above);
    __m256 z = _mm256_div_ps(t, _mm256_add_ps(_mm256_set1_ps(2.0f), t)), w = _mm256_mul_ps(z, z);
    __m256 p = _mm256_set1_ps(NNN_LOG1P_F32[6]);
    for (int j = 5; j >= 0; --j) p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(NNN_LOG1P_F32[j]));
    __m256 l = _mm256_fmadd_ps(_mm256_mul_ps(z, w), p, z);
    __m256 r = _mm256_add_ps(_mm256_and_ps(x, _mm256_cmp_ps(x, zero, _CMP_GT_OQ)), _mm256_add_ps(l, l));
    __m256 big = _mm256_cmp_ps(x, _mm256_set1_ps((float)NNN_SOFTPLUS_THRESHOLD), _CMP_GT_OQ);
    r = _mm256_blendv_ps(r, x, big);
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

INLINE __m256d softplus_f64x4(__m256d x) {
    const __m256d low = _mm256_set1_pd(NNN_SOFTPLUS_LOW_F64), zero = _mm256_setzero_pd();
    __m256d y = _mm256_or_pd(x, _mm256_set1_pd(-0.0));
    __m256d above = _mm256_cmp_pd(y, low, _CMP_GT_OQ);
    __m256d t = _mm256_and_pd(exp_neg_f64x4(_mm256_blendv_pd(low, y, above)), above);
    __m256d z = _mm256_div_pd(t, _mm256_add_pd(_mm256_set1_pd(2.0), t)), w = _mm256_mul_pd(z, z);
    __m256d p = _mm256_set1_pd(NNN_LOG1P_F64[14]);
    for (int j = 13; j >= 0; --j) p = _mm256_fmadd_pd(p, w, _mm256_set1_pd(NNN_LOG1P_F64[j]));
    __m256d l = _mm256_fmadd_pd(_mm256_mul_pd(z, w), p, z);
    __m256d r = _mm256_add_pd(_mm256_and_pd(x, _mm256_cmp_pd(x, zero, _CMP_GT_OQ)), _mm256_add_pd(l, l));
    __m256d big = _mm256_cmp_pd(x, _mm256_set1_pd((double)NNN_SOFTPLUS_THRESHOLD), _CMP_GT_OQ);
    r = _mm256_blendv_pd(r, x, big);
    return _mm256_blendv_pd(r, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}

INLINE __m256 act_f32x8(int act, __m256 v) {
    if (act == NNN_ACT_TANH) return tanh_f32x8(v);
    if (act == NNN_ACT_SOFTPLUS) return softplus_f32x8(v);
    if (act == NNN_ACT_RELU) {
        __m256 pos = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
        return _mm256_blendv_ps(pos, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    return v;
}

INLINE __m256d act_f64x4(int act, __m256d v) {
    if (act == NNN_ACT_TANH) return tanh_f64x4(v);
    if (act == NNN_ACT_SOFTPLUS) return softplus_f64x4(v);
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

/* Register blocks: n rows (1 to 6) x 16 float or 8 double outputs, one named accumulator
 * pair per row (with arrays of vectors GCC keeps them on the stack), stored as they are;
 * the caller applies the activation in place. */
#define R1(M) M(0)
#define R2(M) R1(M) M(1)
#define R3(M) R2(M) M(2)
#define R4(M) R3(M) M(3)
#define R5(M) R4(M) M(4)
#define R6(M) R5(M) M(5)

#define F32_PTR(r) const float *x##r = x + (r) * ldx;
#define F32_INIT(r) __m256 lo##r = _mm256_loadu_ps(b), hi##r = _mm256_loadu_ps(b + 8);
#define F32_FMA(r) { const __m256 v = _mm256_broadcast_ss(x##r + i); \
    lo##r = _mm256_fmadd_ps(w0, v, lo##r); hi##r = _mm256_fmadd_ps(w1, v, hi##r); }
#define F32_STORE(r) _mm256_storeu_ps(y + (r) * ldy, lo##r); _mm256_storeu_ps(y + (r) * ldy + 8, hi##r);
#define F32_BLOCK(n, ROWS)                                                                        \
    static void block##n##_f32(const float *w, const float *b, int64_t n_in, const float *x,      \
                               int64_t ldx, float *y, int64_t ldy) {                              \
        ROWS(F32_PTR) ROWS(F32_INIT)                                                              \
        for (int64_t i = 0; i < n_in; ++i) {                                                      \
            const __m256 w0 = _mm256_loadu_ps(w + 16 * i), w1 = _mm256_loadu_ps(w + 16 * i + 8); \
            ROWS(F32_FMA)                                                                         \
        }                                                                                         \
        ROWS(F32_STORE)                                                                           \
    }
F32_BLOCK(1, R1) F32_BLOCK(2, R2) F32_BLOCK(3, R3) F32_BLOCK(4, R4) F32_BLOCK(5, R5) F32_BLOCK(6, R6)

#define F64_PTR(r) const double *x##r = x + (r) * ldx;
#define F64_INIT(r) __m256d lo##r = _mm256_loadu_pd(b), hi##r = _mm256_loadu_pd(b + 4);
#define F64_FMA(r) { const __m256d v = _mm256_broadcast_sd(x##r + i); \
    lo##r = _mm256_fmadd_pd(w0, v, lo##r); hi##r = _mm256_fmadd_pd(w1, v, hi##r); }
#define F64_STORE(r) _mm256_storeu_pd(y + (r) * ldy, lo##r); _mm256_storeu_pd(y + (r) * ldy + 4, hi##r);
#define F64_BLOCK(n, ROWS)                                                                         \
    static void block##n##_f64(const double *w, const double *b, int64_t n_in, const double *x,    \
                               int64_t ldx, double *y, int64_t ldy) {                              \
        ROWS(F64_PTR) ROWS(F64_INIT)                                                               \
        for (int64_t i = 0; i < n_in; ++i) {                                                       \
            const __m256d w0 = _mm256_loadu_pd(w + 8 * i), w1 = _mm256_loadu_pd(w + 8 * i + 4);    \
            ROWS(F64_FMA)                                                                          \
        }                                                                                          \
        ROWS(F64_STORE)                                                                            \
    }
F64_BLOCK(1, R1) F64_BLOCK(2, R2) F64_BLOCK(3, R3) F64_BLOCK(4, R4) F64_BLOCK(5, R5) F64_BLOCK(6, R6)

typedef void (*block_f32_fn)(const float *, const float *, int64_t, const float *, int64_t, float *, int64_t);
typedef void (*block_f64_fn)(const double *, const double *, int64_t, const double *, int64_t, double *,
                             int64_t);
static const block_f32_fn BLOCKS_F32[7] = {0, block1_f32, block2_f32, block3_f32, block4_f32, block5_f32,
                                           block6_f32};
static const block_f64_fn BLOCKS_F64[7] = {0, block1_f64, block2_f64, block3_f64, block4_f64, block5_f64,
                                           block6_f64};

/* Wide blocks for the last one or two rows: one row x up to 4 output blocks, or two rows x up to
 * 2, so that 8 accumulators hide the fma latency (a 1 x 16 block would wait on it). The
 * weights of output block j start at w + j * NB * n_in. */
#define W32_INIT(j) __m256 lo##j = _mm256_loadu_ps(b + 16 * (j)), hi##j = _mm256_loadu_ps(b + 16 * (j) + 8);
#define W32_FMA(j) lo##j = _mm256_fmadd_ps(_mm256_loadu_ps(w + (j) * 16 * n_in + 16 * i), v, lo##j); \
    hi##j = _mm256_fmadd_ps(_mm256_loadu_ps(w + (j) * 16 * n_in + 16 * i + 8), v, hi##j);
#define W32_STORE(j) _mm256_storeu_ps(y + 16 * (j), lo##j); _mm256_storeu_ps(y + 16 * (j) + 8, hi##j);
#define W64_INIT(j) __m256d lo##j = _mm256_loadu_pd(b + 8 * (j)), hi##j = _mm256_loadu_pd(b + 8 * (j) + 4);
#define W64_FMA(j) lo##j = _mm256_fmadd_pd(_mm256_loadu_pd(w + (j) * 8 * n_in + 8 * i), v, lo##j); \
    hi##j = _mm256_fmadd_pd(_mm256_loadu_pd(w + (j) * 8 * n_in + 8 * i + 4), v, hi##j);
#define W64_STORE(j) _mm256_storeu_pd(y + 8 * (j), lo##j); _mm256_storeu_pd(y + 8 * (j) + 4, hi##j);
#define WIDE(n, T, VT, BC, P, BLOCKS)                                                              \
    static void wide##n##_##P(const T *w, const T *b, int64_t n_in, const T *x, T *y) {           \
        BLOCKS(P##_INIT)                                                                           \
        for (int64_t i = 0; i < n_in; ++i) {                                                       \
            const VT v = BC(x + i);                                                                \
            BLOCKS(P##_FMA)                                                                        \
        }                                                                                          \
        BLOCKS(P##_STORE)                                                                          \
    }
WIDE(1, float, __m256, _mm256_broadcast_ss, W32, R1) WIDE(2, float, __m256, _mm256_broadcast_ss, W32, R2)
WIDE(3, float, __m256, _mm256_broadcast_ss, W32, R3) WIDE(4, float, __m256, _mm256_broadcast_ss, W32, R4)
WIDE(1, double, __m256d, _mm256_broadcast_sd, W64, R1) WIDE(2, double, __m256d, _mm256_broadcast_sd, W64, R2)
WIDE(3, double, __m256d, _mm256_broadcast_sd, W64, R3) WIDE(4, double, __m256d, _mm256_broadcast_sd, W64, R4)
static void (*const WIDE_W32[5])(const float *, const float *, int64_t, const float *, float *) = {
    0, wide1_W32, wide2_W32, wide3_W32, wide4_W32};
static void (*const WIDE_W64[5])(const double *, const double *, int64_t, const double *, double *) = {
    0, wide1_W64, wide2_W64, wide3_W64, wide4_W64};

/* Rows in blocks of 6 (at least 3), output blocks outside so a block's packed weights stay in
 * L1; a remainder of 1 or 2 rows row by row with wide blocks. The activation runs in place. */
static void dense_f32(const float *w, const float *b, int64_t n_in, int64_t n_pad, int act,
                      const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows) {
    const int64_t main = rows % 6 && rows % 6 < 3 ? rows - rows % 6 : rows;
    for (int64_t o = 0; o < n_pad; o += 16)
        for (int64_t r = 0; r < main; r += 6) {
            const int64_t n = main - r < 6 ? main - r : 6;
            BLOCKS_F32[n](w + o * n_in, b + o, n_in, x + r * ldx, ldx, y + r * ldy + o, ldy);
        }
    for (int64_t r = main; r < rows; ++r)
        for (int64_t o = 0; o < n_pad; o += 64) {
            const int64_t nb = (n_pad - o) / 16 < 4 ? (n_pad - o) / 16 : 4;
            WIDE_W32[nb](w + o * n_in, b + o, n_in, x + r * ldx, y + r * ldy + o);
        }
    if (act != NNN_ACT_IDENTITY)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < n_pad; o += 8) {
                float *v = y + r * ldy + o;
                _mm256_storeu_ps(v, act_f32x8(act, _mm256_loadu_ps(v)));
            }
}

static void dense_f64(const double *w, const double *b, int64_t n_in, int64_t n_pad, int act,
                      const double *x, int64_t ldx, double *y, int64_t ldy, int64_t rows) {
    const int64_t main = rows % 6 && rows % 6 < 3 ? rows - rows % 6 : rows;
    for (int64_t o = 0; o < n_pad; o += 8)
        for (int64_t r = 0; r < main; r += 6) {
            const int64_t n = main - r < 6 ? main - r : 6;
            BLOCKS_F64[n](w + o * n_in, b + o, n_in, x + r * ldx, ldx, y + r * ldy + o, ldy);
        }
    for (int64_t r = main; r < rows; ++r)
        for (int64_t o = 0; o < n_pad; o += 32) {
            const int64_t nb = (n_pad - o) / 8 < 4 ? (n_pad - o) / 8 : 4;
            WIDE_W64[nb](w + o * n_in, b + o, n_in, x + r * ldx, y + r * ldy + o);
        }
    if (act != NNN_ACT_IDENTITY)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < n_pad; o += 4) {
                double *v = y + r * ldy + o;
                _mm256_storeu_pd(v, act_f64x4(act, _mm256_loadu_pd(v)));
            }
}

const nnn_kernels nnn_kernels_avx2 = {NNN_ISA_AVX2, dense_f32, dense_f64, act_f32, act_f64};
