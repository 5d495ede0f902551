/* kernels_avx512.c: AVX-512 kernels (this file alone is compiled with -mavx512f -mavx512dq -mfma).
 *
 * One zmm register holds one packed output block (16 float or 8 double, kernels_scalar.c).
 * Register tiles: up to 12 rows x 2 blocks (24 accumulators of the 32 registers); 1 to 6 rows
 * take up to 8 (one row) or 4 blocks so that at least 8 accumulators hide the fma latency.
 * Each lane runs exactly the scalar chain of nnn_math.h and kernels_scalar.c, so the bits
 * are the reference's (and the AVX2 kernels'). */
#include <immintrin.h>

#include "native_internal.h"
#include "nnn_math.h"

#define INLINE static inline __attribute__((always_inline))

/* The elementwise functions: kernels_avx2.c's sequences with masks for the comparisons. */
INLINE __m512 exp_neg_f32x16(__m512 y) {
    const __m512 round = _mm512_set1_ps(NNN_ROUND_F32);
    __m512 k = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(y, _mm512_set1_ps(NNN_LOG2E_F32)), round), round);
    __m512 r = _mm512_fmadd_ps(k, _mm512_set1_ps(-NNN_LN2_HI_F32), y);
    r = _mm512_fmadd_ps(k, _mm512_set1_ps(-NNN_LN2_LO_F32), r);
    __m512 p = _mm512_set1_ps(NNN_EXP_F32[7]);
    for (int j = 6; j >= 0; --j) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NNN_EXP_F32[j]));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

INLINE __m512 tanh_f32x16(__m512 x) {
    const __m512 sign = _mm512_set1_ps(-0.0f), round = _mm512_set1_ps(NNN_ROUND_F32), one = _mm512_set1_ps(1.0f);
    __m512 a = _mm512_andnot_ps(sign, x); /* a NaN lane gives min(NaN, clamp) = clamp, as a < c ? a : c */
    __m512 y = _mm512_mul_ps(_mm512_min_ps(a, _mm512_set1_ps(NNN_TANH_CLAMP_F32)), _mm512_set1_ps(-2.0f));
    __m512 k = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(y, _mm512_set1_ps(NNN_LOG2E_F32)), round), round);
    __m512 r = _mm512_fmadd_ps(k, _mm512_set1_ps(-NNN_LN2_HI_F32), y);
    r = _mm512_fmadd_ps(k, _mm512_set1_ps(-NNN_LN2_LO_F32), r);
    __m512 q = _mm512_set1_ps(NNN_TANH_F32_Q[4]);
    for (int j = 3; j >= 0; --j) q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(NNN_TANH_F32_Q[j]));
    q = _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r);
    __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23));
    __m512 e = _mm512_fmadd_ps(scale, q, _mm512_sub_ps(scale, one));
    __m512 t = _mm512_div_ps(e, _mm512_sub_ps(_mm512_set1_ps(-2.0f), e));
    t = _mm512_or_ps(_mm512_andnot_ps(sign, t), _mm512_and_ps(sign, x));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), t, x);
}

INLINE __m512d exp_neg_f64x8(__m512d y) {
    const __m512d round = _mm512_set1_pd(NNN_ROUND_F64);
    __m512d kr = _mm512_add_pd(_mm512_mul_pd(y, _mm512_set1_pd(NNN_LOG2E_F64)), round);
    __m512d k = _mm512_sub_pd(kr, round);
    __m512d r = _mm512_fmadd_pd(k, _mm512_set1_pd(-NNN_LN2_HI_F64), y);
    r = _mm512_fmadd_pd(k, _mm512_set1_pd(-NNN_LN2_LO_F64), r);
    __m512d p = _mm512_set1_pd(NNN_EXP_F64[13]);
    for (int j = 12; j >= 0; --j) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(NNN_EXP_F64[j]));
    /* kr's low mantissa bits hold 2^51 + k: adding 1023 and shifting by 52 leaves (k + 1023) << 52 */
    __m512i e = _mm512_slli_epi64(_mm512_add_epi64(_mm512_castpd_si512(kr), _mm512_set1_epi64(1023)), 52);
    return _mm512_mul_pd(p, _mm512_castsi512_pd(e));
}

INLINE __m512d tanh_f64x8(__m512d x) {
    const __m512d sign = _mm512_set1_pd(-0.0), one = _mm512_set1_pd(1.0);
    __m512d a = _mm512_andnot_pd(sign, x), s = _mm512_mul_pd(a, a);
    __m512d p = _mm512_set1_pd(NNN_TANH_F64[12]);
    for (int j = 11; j >= 0; --j) p = _mm512_fmadd_pd(p, s, _mm512_set1_pd(NNN_TANH_F64[j]));
    __m512d small = _mm512_fmadd_pd(_mm512_mul_pd(a, s), p, a);
    __m512d c = _mm512_min_pd(a, _mm512_set1_pd(NNN_TANH_CLAMP_F64));
    __m512d t = exp_neg_f64x8(_mm512_mul_pd(c, _mm512_set1_pd(-2.0)));
    __m512d large = _mm512_div_pd(_mm512_sub_pd(one, t), _mm512_add_pd(one, t));
    __m512d r = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, _mm512_set1_pd(NNN_TANH_SMALL_F64), _CMP_LT_OQ), large, small);
    r = _mm512_or_pd(_mm512_andnot_pd(sign, r), _mm512_and_pd(sign, x));
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), r, x);
}

/* softplus lane by lane as nnn_softplus_f32/f64 (nnn_math.h); a zero-masked move is the
 * AVX2 kernels' and with a comparison (+0 where the mask is clear). */
INLINE __m512 softplus_f32x16(__m512 x) {
    const __m512 low = _mm512_set1_ps(NNN_SOFTPLUS_LOW_F32), zero = _mm512_setzero_ps();
    __m512 y = _mm512_or_ps(x, _mm512_set1_ps(-0.0f));
    __mmask16 above = _mm512_cmp_ps_mask(y, low, _CMP_GT_OQ);
    __m512 t = _mm512_maskz_mov_ps(above, exp_neg_f32x16(_mm512_mask_blend_ps(above, low, y)));
    __m512 z = _mm512_div_ps(t, _mm512_add_ps(_mm512_set1_ps(2.0f), t)), w = _mm512_mul_ps(z, z);
    __m512 p = _mm512_set1_ps(NNN_LOG1P_F32[6]);
    for (int j = 5; j >= 0; --j) p = _mm512_fmadd_ps(p, w, _mm512_set1_ps(NNN_LOG1P_F32[j]));
    __m512 l = _mm512_fmadd_ps(_mm512_mul_ps(z, w), p, z);
    __m512 r = _mm512_add_ps(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ), x), _mm512_add_ps(l, l));
    r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps((float)NNN_SOFTPLUS_THRESHOLD), _CMP_GT_OQ), r, x);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), r, x);
}

INLINE __m512d softplus_f64x8(__m512d x) {
    const __m512d low = _mm512_set1_pd(NNN_SOFTPLUS_LOW_F64), zero = _mm512_setzero_pd();
    __m512d y = _mm512_or_pd(x, _mm512_set1_pd(-0.0));
    __mmask8 above = _mm512_cmp_pd_mask(y, low, _CMP_GT_OQ);
    __m512d t = _mm512_maskz_mov_pd(above, exp_neg_f64x8(_mm512_mask_blend_pd(above, low, y)));
    __m512d z = _mm512_div_pd(t, _mm512_add_pd(_mm512_set1_pd(2.0), t)), w = _mm512_mul_pd(z, z);
    __m512d p = _mm512_set1_pd(NNN_LOG1P_F64[14]);
    for (int j = 13; j >= 0; --j) p = _mm512_fmadd_pd(p, w, _mm512_set1_pd(NNN_LOG1P_F64[j]));
    __m512d l = _mm512_fmadd_pd(_mm512_mul_pd(z, w), p, z);
    __m512d r = _mm512_add_pd(_mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, zero, _CMP_GT_OQ), x), _mm512_add_pd(l, l));
    r = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, _mm512_set1_pd((double)NNN_SOFTPLUS_THRESHOLD), _CMP_GT_OQ), r, x);
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), r, x);
}

INLINE __m512 act_f32x16(int act, __m512 v) {
    if (act == NNN_ACT_TANH) return tanh_f32x16(v);
    if (act == NNN_ACT_SOFTPLUS) return softplus_f32x16(v);
    if (act == NNN_ACT_RELU) {
        __m512 pos = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), pos, v);
    }
    return v;
}

INLINE __m512d act_f64x8(int act, __m512d v) {
    if (act == NNN_ACT_TANH) return tanh_f64x8(v);
    if (act == NNN_ACT_SOFTPLUS) return softplus_f64x8(v);
    if (act == NNN_ACT_RELU) {
        __m512d pos = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_GT_OQ), v);
        return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q), pos, v);
    }
    return v;
}

/* The tail of fewer than one register with masked loads and stores (masked lanes compute
 * on zeros and are not written). */
static void act_f32(int act, float *v, int64_t n) {
    if (act == NNN_ACT_IDENTITY) return;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(v + i, act_f32x16(act, _mm512_loadu_ps(v + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(v + i, m, act_f32x16(act, _mm512_maskz_loadu_ps(m, v + i)));
    }
}

static void act_f64(int act, double *v, int64_t n) {
    if (act == NNN_ACT_IDENTITY) return;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(v + i, act_f64x8(act, _mm512_loadu_pd(v + i)));
    if (i < n) {
        const __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
        _mm512_mask_storeu_pd(v + i, m, act_f64x8(act, _mm512_maskz_loadu_pd(m, v + i)));
    }
}

/* Register tiles: n rows x m output blocks, one named accumulator a<r>_<j> per pair (with
 * arrays of vectors GCC keeps them on the stack). R<n>(F, a) expands F(0, a) .. F(n-1, a),
 * B<m>(F, r) expands F(r, 0) .. F(r, m-1). The inputs run in chains of NNN_CHAIN: the first
 * chain starts at the bias and is stored, each later one starts at zero and is added to the
 * stored sum. The weights of block j start at w + j * NB * n_in. */
#define R1(F, a) F(0, a)
#define R2(F, a) R1(F, a) F(1, a)
#define R3(F, a) R2(F, a) F(2, a)
#define R4(F, a) R3(F, a) F(3, a)
#define R5(F, a) R4(F, a) F(4, a)
#define R6(F, a) R5(F, a) F(5, a)
#define R7(F, a) R6(F, a) F(6, a)
#define R8(F, a) R7(F, a) F(7, a)
#define R9(F, a) R8(F, a) F(8, a)
#define R10(F, a) R9(F, a) F(9, a)
#define R11(F, a) R10(F, a) F(10, a)
#define R12(F, a) R11(F, a) F(11, a)
#define B1(F, r) F(r, 0)
#define B2(F, r) B1(F, r) F(r, 1)
#define B3(F, r) B2(F, r) F(r, 2)
#define B4(F, r) B3(F, r) F(r, 3)
#define B5(F, r) B4(F, r) F(r, 4)
#define B6(F, r) B5(F, r) F(r, 5)
#define B7(F, r) B6(F, r) F(r, 6)
#define B8(F, r) B7(F, r) F(r, 7)
#define W1(F) F(0)
#define W2(F) W1(F) F(1)
#define W3(F) W2(F) F(2)
#define W4(F) W3(F) F(3)
#define W5(F) W4(F) F(4)
#define W6(F) W5(F) F(5)
#define W7(F) W6(F) F(6)
#define W8(F) W7(F) F(7)

/* The chains over i < n_in; a whole chain asks to be unrolled. */
#define CHAINS(ZERO, STEP, ADD, STORE)                                                            \
    for (int64_t i0 = 0; i0 < n_in; i0 += NNN_CHAIN) {                                            \
        if (i0) { ZERO }                                                                          \
        if (n_in - i0 >= NNN_CHAIN) {                                                             \
            _Pragma("GCC unroll 16") for (int64_t i = i0; i < i0 + NNN_CHAIN; ++i) { STEP }        \
        } else {                                                                                  \
            for (int64_t i = i0; i < n_in; ++i) { STEP }                                          \
        }                                                                                         \
        if (i0) { ADD } else { STORE }                                                            \
    }

/* Per element type P (F32, F64): vector type, block width NB, intrinsics. */
#define F32_V __m512
#define F32_NB 16
#define F32_LOAD _mm512_loadu_ps
#define F32_STOREV _mm512_storeu_ps
#define F32_SET1 _mm512_set1_ps
#define F32_ZEROV _mm512_setzero_ps
#define F32_FMADD _mm512_fmadd_ps
#define F32_ADDV _mm512_add_ps
#define F64_V __m512d
#define F64_NB 8
#define F64_LOAD _mm512_loadu_pd
#define F64_STOREV _mm512_storeu_pd
#define F64_SET1 _mm512_set1_pd
#define F64_ZEROV _mm512_setzero_pd
#define F64_FMADD _mm512_fmadd_pd
#define F64_ADDV _mm512_add_pd

#define T_PTR(r, P) const P##_T *x##r = x + (r) * ldx;
#define T_INIT(r, j) acc_type a##r##_##j = LOADV(b + NB * (j));
#define T_ZERO(r, j) a##r##_##j = ZEROV();
#define T_W(j) const acc_type w##j = LOADV(w + (j) * NB * n_in + NB * i);
#define T_FMA(r, j) a##r##_##j = FMADD(w##j, v, a##r##_##j);
#define T_STORE(r, j) STOREV(y + (r) * ldy + NB * (j), a##r##_##j);
#define T_ADD(r, j) STOREV(y + (r) * ldy + NB * (j), ADDV(LOADV(y + (r) * ldy + NB * (j)), a##r##_##j));
#define T_ROW_INIT(r, m) B##m(T_INIT, r)
#define T_ROW_ZERO(r, m) B##m(T_ZERO, r)
#define T_ROW_FMA(r, m) { const acc_type v = SET1(x##r[i]); B##m(T_FMA, r) }
#define T_ROW_STORE(r, m) B##m(T_STORE, r)
#define T_ROW_ADD(r, m) B##m(T_ADD, r)

#define F32_T float
#define F64_T double
#define TILE(P, n, m)                                                                             \
    static void tile##n##x##m##_##P(const P##_T *w, const P##_T *b, int64_t n_in, const P##_T *x, \
                                    int64_t ldx, P##_T *y, int64_t ldy) {                         \
        R##n(T_PTR, P) R##n(T_ROW_INIT, m)                                                        \
        CHAINS(R##n(T_ROW_ZERO, m), W##m(T_W) R##n(T_ROW_FMA, m), R##n(T_ROW_ADD, m),             \
               R##n(T_ROW_STORE, m))                                                              \
    }

/* The tiles of one element type: 1 row by 1 to 8 blocks, 2 to 6 rows by 1 to 4, 7 to 12 rows
 * by 1 or 2. */
#define TILES(P)                                                                                  \
    TILE(P, 1, 1) TILE(P, 1, 2) TILE(P, 1, 3) TILE(P, 1, 4) TILE(P, 1, 5) TILE(P, 1, 6)           \
    TILE(P, 1, 7) TILE(P, 1, 8) TILE(P, 2, 1) TILE(P, 2, 2) TILE(P, 2, 3) TILE(P, 2, 4)           \
    TILE(P, 3, 1) TILE(P, 3, 2) TILE(P, 3, 3) TILE(P, 3, 4) TILE(P, 4, 1) TILE(P, 4, 2)           \
    TILE(P, 4, 3) TILE(P, 4, 4) TILE(P, 5, 1) TILE(P, 5, 2) TILE(P, 5, 3) TILE(P, 5, 4)           \
    TILE(P, 6, 1) TILE(P, 6, 2) TILE(P, 6, 3) TILE(P, 6, 4)                                       \
    TILE(P, 7, 1) TILE(P, 7, 2) TILE(P, 8, 1) TILE(P, 8, 2) TILE(P, 9, 1) TILE(P, 9, 2)           \
    TILE(P, 10, 1) TILE(P, 10, 2) TILE(P, 11, 1) TILE(P, 11, 2) TILE(P, 12, 1) TILE(P, 12, 2)
#define TILE_TABLE(P)                                                                             \
    {{0}, {0, tile1x1_##P, tile1x2_##P, tile1x3_##P, tile1x4_##P, tile1x5_##P, tile1x6_##P,       \
           tile1x7_##P, tile1x8_##P},                                                             \
     {0, tile2x1_##P, tile2x2_##P, tile2x3_##P, tile2x4_##P},                                      \
     {0, tile3x1_##P, tile3x2_##P, tile3x3_##P, tile3x4_##P},                                      \
     {0, tile4x1_##P, tile4x2_##P, tile4x3_##P, tile4x4_##P},                                      \
     {0, tile5x1_##P, tile5x2_##P, tile5x3_##P, tile5x4_##P},                                      \
     {0, tile6x1_##P, tile6x2_##P, tile6x3_##P, tile6x4_##P},                                      \
     {0, tile7x1_##P, tile7x2_##P}, {0, tile8x1_##P, tile8x2_##P}, {0, tile9x1_##P, tile9x2_##P},   \
     {0, tile10x1_##P, tile10x2_##P}, {0, tile11x1_##P, tile11x2_##P}, {0, tile12x1_##P, tile12x2_##P}}

#define acc_type F32_V
#define NB F32_NB
#define LOADV F32_LOAD
#define STOREV F32_STOREV
#define SET1 F32_SET1
#define ZEROV F32_ZEROV
#define FMADD F32_FMADD
#define ADDV F32_ADDV
TILES(F32)
#undef acc_type
#undef NB
#undef LOADV
#undef STOREV
#undef SET1
#undef ZEROV
#undef FMADD
#undef ADDV
#define acc_type F64_V
#define NB F64_NB
#define LOADV F64_LOAD
#define STOREV F64_STOREV
#define SET1 F64_SET1
#define ZEROV F64_ZEROV
#define FMADD F64_FMADD
#define ADDV F64_ADDV
TILES(F64)

#define MAX_TILE_ROWS 12
typedef void (*tile_f32_fn)(const float *, const float *, int64_t, const float *, int64_t, float *, int64_t);
typedef void (*tile_f64_fn)(const double *, const double *, int64_t, const double *, int64_t, double *, int64_t);
static const tile_f32_fn TILES_f32[MAX_TILE_ROWS + 1][9] = TILE_TABLE(F32);
static const tile_f64_fn TILES_f64[MAX_TILE_ROWS + 1][9] = TILE_TABLE(F64);

/* The activation in place over a tile just written (still in L1): rows x width values. */
static void act_tile_f32(int act, float *y, int64_t ldy, int64_t rows, int64_t width) {
    if (act != NNN_ACT_IDENTITY)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < width; o += 16)
                _mm512_storeu_ps(y + r * ldy + o, act_f32x16(act, _mm512_loadu_ps(y + r * ldy + o)));
}

static void act_tile_f64(int act, double *y, int64_t ldy, int64_t rows, int64_t width) {
    if (act != NNN_ACT_IDENTITY)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < width; o += 8)
                _mm512_storeu_pd(y + r * ldy + o, act_f64x8(act, _mm512_loadu_pd(y + r * ldy + o)));
}

/* From 7 rows on: tiles of 2 blocks (one for an odd last block) over near-equal runs of at
 * most 12 rows, output blocks outside so a pair's packed weights stay in L1. Fewer rows: all
 * rows at once over up to 8 blocks (one row) or 4 (2 to 6 rows). Each tile's activation runs
 * right after the tile, so it overlaps the next tile's loads. */
#define DENSE(P, T, NBW)                                                                           \
    static void dense_##P(const T *w, const T *b, int64_t n_in, int64_t n_pad, int act, const T *x, \
                          int64_t ldx, T *y, int64_t ldy, int64_t rows) {                          \
        const int64_t nblk = n_pad / NBW;                                                          \
        if (rows >= 7) {                                                                           \
            const int64_t tiles = (rows + MAX_TILE_ROWS - 1) / MAX_TILE_ROWS;                      \
            for (int64_t j = 0; j < nblk; j += 2) {                                                \
                const int64_t m = nblk - j < 2 ? 1 : 2;                                            \
                for (int64_t t = 0; t < tiles; ++t) {                                              \
                    const int64_t r0 = rows * t / tiles, n = rows * (t + 1) / tiles - r0;          \
                    TILES_##P[n][m](w + j * NBW * n_in, b + j * NBW, n_in, x + r0 * ldx, ldx,      \
                                    y + r0 * ldy + j * NBW, ldy);                                  \
                    act_tile_##P(act, y + r0 * ldy + j * NBW, ldy, n, m * NBW);                    \
                }                                                                                  \
            }                                                                                      \
        } else if (rows > 0) {                                                                     \
            const int64_t most = rows == 1 ? 8 : 4;                                                \
            for (int64_t j = 0; j < nblk; j += most) {                                             \
                const int64_t m = nblk - j < most ? nblk - j : most;                               \
                TILES_##P[rows][m](w + j * NBW * n_in, b + j * NBW, n_in, x, ldx, y + j * NBW, ldy); \
                act_tile_##P(act, y + j * NBW, ldy, rows, m * NBW);                                \
            }                                                                                      \
        }                                                                                          \
    }
DENSE(f32, float, 16)
DENSE(f64, double, 8)

const nnn_kernels nnn_kernels_avx512 = {NNN_ISA_AVX512, dense_f32, dense_f64, act_f32, act_f64};
