/* nnn_math.h: the scalar reference of the arithmetic contract's functions (README.md).
 *
 * Every SIMD kernel computes, lane by lane, exactly these operation sequences: only
 * correctly rounded IEEE operations (+ - * / fma, min by comparison, integer bit moves),
 * in this order. Compiled with -ffp-contract=off so nothing is fused that is not written
 * as fma. */
#ifndef NN_NATIVE_MATH_H
#define NN_NATIVE_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* A dense layer sums its inputs in chains of this many (README.md, contract item 1). */
#define NNN_CHAIN 16

/* float64 tanh: tanh(x) = x + x^3 P(x^2) for |x| < NNN_TANH_SMALL_F64: Taylor coefficients of x^3, x^5, ... */
static const double NNN_TANH_F64[13] = {-0x1.5555555555555p-2,  0x1.1111111111111p-3,   -0x1.ba1ba1ba1ba1cp-5,
                                        0x1.664f4882c10fap-6,   -0x1.226e355e6c23dp-7,  0x1.d6d3d0e157de0p-9,
                                        -0x1.7da36452b75e3p-10, 0x1.3558248036744p-11,  -0x1.f57d7734d1664p-13,
                                        0x1.967e18afcafadp-14,  -0x1.497d8eea25259p-15, 0x1.0b132d39a6050p-16,
                                        -0x1.b0f72d3ee24e9p-18};
/* float64 exp(r) = sum_k r^k / k! for |r| <= ln2 / 2: coefficients 1/k! from k = 0 */
static const double NNN_EXP_F64[14] = {0x1p+0,
                                       0x1p+0,
                                       0x1p-1,
                                       0x1.5555555555555p-3,
                                       0x1.5555555555555p-5,
                                       0x1.1111111111111p-7,
                                       0x1.6c16c16c16c17p-10,
                                       0x1.a01a01a01a01ap-13,
                                       0x1.a01a01a01a01ap-16,
                                       0x1.71de3a556c734p-19,
                                       0x1.27e4fb7789f5cp-22,
                                       0x1.ae64567f544e4p-26,
                                       0x1.1eed8eff8d898p-29,
                                       0x1.6124613a86d09p-33};
/* float32 exp(r) = sum_k r^k / k! for |r| <= ln2 / 2 (softplus): coefficients 1/k! from k = 0 */
static const float NNN_EXP_F32[8] = {0x1p+0f,        0x1p+0f,        0x1p-1f,         0x1.555556p-3f,
                                     0x1.555556p-5f, 0x1.111112p-7f, 0x1.6c16c2p-10f, 0x1.a01a02p-13f};
/* float32 tanh: expm1(r) = r + r^2 Q(r) for |r| <= ln2 / 2, Q of degree 4 fitted for the least
 * maximum relative error of expm1 (2^-25.7 with these binary32 coefficients). */
static const float NNN_TANH_F32_Q[5] = {0x1.fffffep-2f, 0x1.55549p-3f, 0x1.5556acp-5f, 0x1.123aecp-7f, 0x1.6be874p-10f};
#define NNN_LN2_HI_F32 0x1.62e430p-1f /* k * this is exact for |k| < 2^8 */
#define NNN_LN2_LO_F32 -0x1.05c610p-29f
#define NNN_LOG2E_F32 0x1.715476p+0f
#define NNN_ROUND_F32 0x1.8p23f /* (v + this) - this rounds |v| < 2^22 to an integer */
#define NNN_LN2_HI_F64 0x1.62e42fefa39efp-1
#define NNN_LN2_LO_F64 0x1.abc9e3b39803fp-56
#define NNN_LOG2E_F64 0x1.71547652b82fep+0
#define NNN_ROUND_F64 0x1.8p52 /* (v + this) - this rounds |v| < 2^51 to an integer */
#define NNN_TANH_SMALL_F64 0.4
#define NNN_TANH_CLAMP_F32 10.0f /* tanh rounds to 1 beyond 9.01 (float), 19.06 (double) */
#define NNN_TANH_CLAMP_F64 20.0

/* exp(y) for y in [-2 clamp, 0] (tanh) or [softplus low, 0]: y = k ln2 + r, exp(r) by Horner,
 * times 2^k. */
static inline float nnn_exp_neg_f32(float y) {
    float k = (y * NNN_LOG2E_F32 + NNN_ROUND_F32) - NNN_ROUND_F32;
    float r = fmaf(k, -NNN_LN2_HI_F32, y);
    r = fmaf(k, -NNN_LN2_LO_F32, r);
    float p = NNN_EXP_F32[7];
    for (int j = 6; j >= 0; --j) p = fmaf(p, r, NNN_EXP_F32[j]);
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline double nnn_exp_neg_f64(double y) {
    double k = (y * NNN_LOG2E_F64 + NNN_ROUND_F64) - NNN_ROUND_F64;
    double r = fma(k, -NNN_LN2_HI_F64, y);
    r = fma(k, -NNN_LN2_LO_F64, r);
    double p = NNN_EXP_F64[13];
    for (int j = 12; j >= 0; --j) p = fma(p, r, NNN_EXP_F64[j]);
    uint64_t bits = (uint64_t)((int64_t)k + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* float32 tanh, one formula: a = |x|, y = -2 min(a, clamp) = k ln2 + r (r in two fma steps),
 * e = expm1(y) = 2^k (r + r^2 Q(r)) + (2^k - 1), tanh(a) = e / (-2 - e); the sign of x;
 * NaN returns x itself. */
static inline float nnn_tanh_f32(float x) {
    float a = fabsf(x);
    float y = (a < NNN_TANH_CLAMP_F32 ? a : NNN_TANH_CLAMP_F32) * -2.0f;
    float k = (y * NNN_LOG2E_F32 + NNN_ROUND_F32) - NNN_ROUND_F32;
    float r = fmaf(k, -NNN_LN2_HI_F32, y);
    r = fmaf(k, -NNN_LN2_LO_F32, r);
    float q = NNN_TANH_F32_Q[4];
    for (int j = 3; j >= 0; --j) q = fmaf(q, r, NNN_TANH_F32_Q[j]);
    q = fmaf(r * r, q, r);
    uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float e = fmaf(scale, q, scale - 1.0f);
    float t = e / (-2.0f - e);
    return x != x ? x : copysignf(t, x);
}

/* float64 tanh: a = |x|; small a: a + (a * a^2) P(a^2); else (1 - t) / (1 + t),
 * t = exp(-2 min(a, clamp)); the sign of x; NaN returns x itself. */
static inline double nnn_tanh_f64(double x) {
    double a = fabs(x), s = a * a;
    double p = NNN_TANH_F64[12];
    for (int j = 11; j >= 0; --j) p = fma(p, s, NNN_TANH_F64[j]);
    double small = fma(a * s, p, a);
    double c = a < NNN_TANH_CLAMP_F64 ? a : NNN_TANH_CLAMP_F64;
    double t = nnn_exp_neg_f64(c * -2.0);
    double large = (1.0 - t) / (1.0 + t);
    double r = a < NNN_TANH_SMALL_F64 ? small : large;
    return x != x ? x : copysign(r, x);
}

/* relu: x if x > 0, NaN stays NaN, else +0. */
static inline float nnn_relu_f32(float x) { return x > 0.0f ? x : (x != x ? x : 0.0f); }
static inline double nnn_relu_f64(double x) { return x > 0.0 ? x : (x != x ? x : 0.0); }

/* softplus(x) = x > 20 ? x : max(x, 0) + log1p(exp(-|x|)) (torch's threshold 20), with
 * exp(y) the contract's nnn_exp_neg for y >= the lowest normal result (NNN_SOFTPLUS_LOW) and
 * 0 below it, and log1p(t) = 2 atanh(z), z = t / (2 + t) <= 1/3: 2 (z + z w Q(w)), w = z^2,
 * Q by Horner with fma from the highest coefficient (1/3, 1/5, ...: 7 in float, 15 in double).
 * NaN returns x itself. */
#define NNN_SOFTPLUS_THRESHOLD 20
#define NNN_SOFTPLUS_LOW_F32 -87.5f /* exp below this is subnormal: taken as 0 */
#define NNN_SOFTPLUS_LOW_F64 -708.0
static const float NNN_LOG1P_F32[7] = {(float)(1.0 / 3),  (float)(1.0 / 5),  (float)(1.0 / 7), (float)(1.0 / 9),
                                       (float)(1.0 / 11), (float)(1.0 / 13), (float)(1.0 / 15)};
static const double NNN_LOG1P_F64[15] = {1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,  1.0 / 11, 1.0 / 13, 1.0 / 15, 1.0 / 17,
                                         1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25, 1.0 / 27, 1.0 / 29, 1.0 / 31};

static inline float nnn_softplus_f32(float x) {
    float y = -fabsf(x);
    float c = y > NNN_SOFTPLUS_LOW_F32 ? y : NNN_SOFTPLUS_LOW_F32;
    float t = nnn_exp_neg_f32(c);
    t = y > NNN_SOFTPLUS_LOW_F32 ? t : 0.0f;
    float z = t / (2.0f + t), w = z * z;
    float p = NNN_LOG1P_F32[6];
    for (int j = 5; j >= 0; --j) p = fmaf(p, w, NNN_LOG1P_F32[j]);
    float l = fmaf(z * w, p, z);
    float r = (x > 0.0f ? x : 0.0f) + (l + l);
    r = x > (float)NNN_SOFTPLUS_THRESHOLD ? x : r;
    return x != x ? x : r;
}

static inline double nnn_softplus_f64(double x) {
    double y = -fabs(x);
    double c = y > NNN_SOFTPLUS_LOW_F64 ? y : NNN_SOFTPLUS_LOW_F64;
    double t = nnn_exp_neg_f64(c);
    t = y > NNN_SOFTPLUS_LOW_F64 ? t : 0.0;
    double z = t / (2.0 + t), w = z * z;
    double p = NNN_LOG1P_F64[14];
    for (int j = 13; j >= 0; --j) p = fma(p, w, NNN_LOG1P_F64[j]);
    double l = fma(z * w, p, z);
    double r = (x > 0.0 ? x : 0.0) + (l + l);
    r = x > (double)NNN_SOFTPLUS_THRESHOLD ? x : r;
    return x != x ? x : r;
}

#endif
