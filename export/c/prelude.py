"""The C helpers every generated model.c starts with: TFLite's integer rounding (a port of
runtime/quant/fixed.py, line for line) and the float rounding of the numpy spec's quantize.

Everything is static, C99, and uses math.h only. Signed right shifts are arithmetic on every
compiler rnnedge targets (gcc, clang); products that must not overflow are taken in int64.
"""

PRELUDE = r"""
#include <math.h>
#include <stdint.h>

/* every helper is static; unused ones are fine (clang warns on unused static inline in a .c) */
#if defined(__GNUC__)
#define RN_INLINE static inline __attribute__((unused))
#else
#define RN_INLINE static inline
#endif

/* weights start on a cache line: a 64-byte vector load of a 32-byte aligned array spans two
 * lines (measured: the float GRU 40 -> 128 step took 6.4 instead of 3.9 us with AVX-512) */
#if defined(__GNUC__)
#define RN_ALIGNED __attribute__((aligned(64)))
#else
#define RN_ALIGNED
#endif

/* clamp an int64 to [lo, hi] */
RN_INLINE int64_t rq_clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* a float already rounded to an integer -> int64, saturated far outside every int range */
RN_INLINE int64_t rq_int(float r)
{
    /* branch-free, no libm call, so loops vectorise; NaN gives -1e15 (inputs are finite) */
    r = r > -1e15f ? r : -1e15f;
    return (int64_t)(r < 1e15f ? r : 1e15f);
}

/* runtime/quant/fixed.round_away in float32: sign(x) * floor(|x| + 0.5f) (TfLiteRound) */
RN_INLINE int64_t rq_round_away(float x)
{
    float r = floorf(fabsf(x) + 0.5f);
    return rq_int(x > 0 ? r : (x < 0 ? -r : 0.0f));
}

/* np.rint: half to even (the default rounding mode) */
RN_INLINE int64_t rq_rint(float x)
{
    return rq_int(rintf(x));
}

/* the int32 twins of rq_clamp / rq_rint for the int8 kernels, whose values all fit: a float
 * is saturated to +-2^30 before the conversion (far outside every int8/int16 range, so the
 * final clamp gives what the spec's int64 gives; NaN goes to the low end, as there) */
RN_INLINE int32_t rq_clamp32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

RN_INLINE int32_t rq_rint32(float x)
{
    float r = rintf(x);
    r = r > -1073741824.0f ? r : -1073741824.0f;
    return (int32_t)(r < 1073741824.0f ? r : 1073741824.0f);
}

/* rq_clamp32(rq_rint32(v) + zp, lo + zp, hi + zp) with the clamp taken in float on rint(v),
 * against lo = out.lo - zp and hi = out.hi - zp (exact), before the conversion: the same
 * integers for every float, NaN (lo) and +-inf included, in fewer vector instructions */
RN_INLINE int32_t rq_rint_clamp32(float v, float lo, float hi, int32_t zp)
{
    float r = rintf(v);
    r = r > lo ? r : lo;
    return (int32_t)(r < hi ? r : hi) + zp;
}

/* gemmlowp SaturatingRoundingDoublingHighMul (fixed.srdhm) */
RN_INLINE int64_t rq_srdhm(int64_t a, int64_t b)
{
    int64_t ab, v;
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    ab = a * b;
    v = ab + ((int64_t)1 << 30) - (ab < 0 ? (((int64_t)1 << 31) - 1) : 0);
    return v / ((int64_t)1 << 31); /* C99 division truncates toward zero, as C++'s */
}

/* gemmlowp RoundingDivideByPOT (fixed.rounding_divide_by_pot) */
RN_INLINE int64_t rq_rdbpot(int64_t x, int e)
{
    int64_t mask = ((int64_t)1 << e) - 1;
    int64_t rem = x & mask;
    int64_t thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (fixed.multiply_by_quantized_multiplier) */
RN_INLINE int64_t rq_mbqm(int64_t x, int64_t q, int shift)
{
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return rq_rdbpot(rq_srdhm(x * ((int64_t)1 << left), q), right);
}

/* runtime/quant/int8.quantize: round_away(x / scale) + zp, clamped */
RN_INLINE int64_t rq_quantize(float x, float scale, int64_t zp, int64_t lo, int64_t hi)
{
    return rq_clamp(rq_round_away(x / scale) + zp, lo, hi);
}

/* numpy's float32 exp on x86 (AVX2+FMA3 / AVX512F: numpy/_core/src/umath/
 * loops_exponent_log.dispatch.c.src, simd_exp_FLOAT): Cody-Waite reduction, a P5/Q2 rational
 * approximation with fused multiply-adds, times 2^q in two exact halves (the second multiply
 * rounds once, as ldexpf), the edge cases as selects, so loops over it vectorise. libm's expf
 * differs from it by an ulp in ~40% of inputs, which the int8 spec's float islands (softmax)
 * would show; this is bit for bit numpy's (tests/runtime/test_native_kernels.py) */
RN_INLINE float rn_pow2i(int e)
{
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)(e + 127) << 23;
    return v.f;
}
RN_INLINE float rn_vexp(float x)
{
    const float xc = x < 88.72283935546875f ? (x > -104.0f ? x : -104.0f) : 88.72283935546875f;
    const float q = (xc * 1.44269504088896341f + 0x1.8p23f) - 0x1.8p23f;
    float y = fmaf(q, -6.93145752e-1f, xc), num, den, r;
    int e, h;
    y = fmaf(q, -1.42860677e-6f, y);
    y = fmaf(q, 0.0f, y);
    num = fmaf(5.082762527590693718096e-04f, y, 6.757896990527504603057e-03f);
    num = fmaf(num, y, 5.114512081637298353406e-02f);
    num = fmaf(num, y, 2.473615434895520810817e-01f);
    num = fmaf(num, y, 7.257664613233124478488e-01f);
    num = fmaf(num, y, 9.999999999980870924916e-01f);
    den = fmaf(2.159509375685829852307e-02f, y, -2.742335390411667452936e-01f);
    den = fmaf(den, y, 1.0f);
    e = (int)q;
    h = e / 2;
    r = (num / den) * rn_pow2i(h) * rn_pow2i(e - h);
    r = x >= 88.72283935546875f ? INFINITY : r;
    r = x <= -103.97208404541015625f ? 0.0f : r;
    return x != x ? x : r;
}

/* numpy's sigmoid (runtime/ops.sigmoid: 1 / (1 + e) for x >= 0, e / (1 + e) below, e =
 * exp(-|x|)), in float32, over numpy's exp: branch-free, the numerator picked before the one
 * division (a vector loop computed both quotients) */
RN_INLINE float rn_sigmoid(float x)
{
    const float e = rn_vexp(-fabsf(x));
    return (x >= 0 ? 1.0f : e) / (1.0f + e);
}

/* tanh within 3e-7 relative of the true value (libm's tanhf: 1.2e-7), branch-free so loops
 * vectorise: 1 - 2 / (e^2|x| + 1) from |x| = 0.55, below it Eigen's rational 13/6
 * (generic_fast_tanh_float) */
RN_INLINE float rn_tanh(float x)
{
    const float c = 7.90531110763549805f, ax = fabsf(x);
    const float xc = x > c ? c : (x < -c ? -c : x), x2 = xc * xc;
    float p = -2.76076847742355e-16f, q = 1.19825839466702e-06f, r, t;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    { /* one division: the rational's or 2 / (e^2|x| + 1), picked before it */
        const int small = ax < 0.55f;
        const float d = (small ? p * xc : 2.0f) / (small ? q : rn_vexp(2.0f * ax) + 1.0f);
        r = ax < 0.0004f ? x : d;
        t = 1.0f - d;
        t = x < 0 ? -t : t;
        return small ? r : (x != x ? x : t);
    }
}

/* runtime/ops.erf: Abramowitz & Stegun 7.1.26 in double */
RN_INLINE double rn_erf(double x)
{
    double t = 1.0 / (1.0 + 0.3275911 * fabs(x));
    double poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
        + t * (-1.453152027 + t * 1.061405429))));
    double s = x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0);
    return s * (1.0 - poly * exp(-x * x));
}

/* sum_i x[i] w[i] in int32: an integer sum is exact in any order, so compilers vectorise it
 * (vpmaddwd / vpdpwssd on x86, smlal / sdot on arm64) and it stays bit-exact */
RN_INLINE int32_t rq_dot(const int16_t *x, const int8_t *w, int k)
{
    int32_t s = 0;
    for (int i = 0; i < k; i++) s += (int32_t)x[i] * (int32_t)w[i];
    return s;
}

/* one multiply-add of the float products (export/c/panels.py, gemm.py) */
#if defined(__FMA__) || defined(__aarch64__)
#define RN_MADD(a, x, w) fmaf(x, w, a) /* one rounding: the float path is tolerance-tested */
#else
#define RN_MADD(a, x, w) ((a) + (x) * (w))
#endif

/* numpy's pairwise sum of float32 (umath loops_utils pairwise_sum): sequential below 8,
 * eight running sums up to 128, halves (a multiple of 8) above */
RN_INLINE float rn_psum(const float *a, int n)
{
    if (n < 8) {
        float s = -0.0f;
        for (int i = 0; i < n; i++) s += a[i];
        return s;
    }
    if (n <= 128) {
        float r[8], s;
        int i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) s += a[i];
        return s;
    }
    {
        int n2 = n / 2;
        n2 -= n2 % 8;
        return rn_psum(a, n2) + rn_psum(a + n2, n - n2);
    }
}

/* numpy's float32 log on x86 (the same file, simd_log_FLOAT): mantissa in [0.5, 1) (frexp,
 * as AVX512's getmant/getexp), a P5/Q5 rational approximation, + e ln 2 */
RN_INLINE float rn_nplog(float x)
{
    if (x != x) return x;
    if (x < 0.0f) return -NAN;
    if (x == 0.0f) return -INFINITY;
    if (x == INFINITY) return INFINITY;
    {
        int e;
        float m = frexpf(x, &e), ef, num, den;
        ef = (float)e;
        if (m <= 0.707106781186547524f) { m = m + m; ef = ef - 1.0f; }
        m = m - 1.0f;
        num = fmaf(2.589979117907922693523e-02f, m, 3.808837741388407920751e-01f);
        num = fmaf(num, m, 1.480000633576506585156e+00f);
        num = fmaf(num, m, 2.112677543073053063722e+00f);
        num = fmaf(num, m, 9.999999999999998702752e-01f);
        num = fmaf(num, m, 0.0f);
        den = fmaf(5.875095403124574342950e-03f, m, 1.546476374983906719538e-01f);
        den = fmaf(den, m, 9.864942958519418960339e-01f);
        den = fmaf(den, m, 2.453006071784736363091e+00f);
        den = fmaf(den, m, 2.612677543073109236779e+00f);
        den = fmaf(den, m, 1.0f);
        return fmaf(ef, 0.693147180559945309f, num / den);
    }
}
/* log1p(e) for 0 <= e <= 1 (softplus's log1p(exp(-|x|)), export/c/nn_ops.py) within 2 ulp,
 * branch-free so the loop vectorises (libm's log1pf is a call per element: 30 cycles each in
 * Mamba's softplus): 2 atanh(s), s = e / (2 + e) <= 1/3, as 2 s (1 + s^2/3 + ... + s^14/15) */
RN_INLINE float rn_log1p01(float e)
{
    const float s = e / (2.0f + e), z = s * s;
    float p = 1.0f / 15.0f;
    p = p * z + 1.0f / 13.0f;
    p = p * z + 1.0f / 11.0f;
    p = p * z + 1.0f / 9.0f;
    p = p * z + 1.0f / 7.0f;
    p = p * z + 1.0f / 5.0f;
    p = p * z + 1.0f / 3.0f;
    return e < 5.9604645e-8f ? e : 2.0f * s + 2.0f * s * (p * z); /* below 2^-24 it rounds to e */
}
RN_INLINE float rn_max(float a, float b) { return (a != a || a > b) ? a : b; }
RN_INLINE float rn_min(float a, float b) { return (a != a || a < b) ? a : b; }
"""
