"""The int8 matrix-vector product of the generated C, one weight layout for every CPU and a
kernel per instruction set, chosen when the board's compiler builds the file:

  AVX-512 VNNI (+VL)  vpdpbusd: uint8 (x + 128) times int8 w, four products per int32 lane
  AVX2                vpmaddwd: int16 (x - zp) times the int8 w widened, pairs per lane
  arm64 dot product   sdot: int8 x times int8 w, four products per lane (Armv8.2 dotprod)
  anything else       the same sums in plain C (GCC/clang vectorise it: smlal on NEON)

Every kernel returns exactly sum_k (x[k] - zp) w[n, k] in int32: an integer sum is exact in
any order, and no step can overflow or saturate (|x - zp| <= 255, |w| <= 127; the u8 / s8
kernels subtract the offset times the row sum after), so all four equal the numpy spec bit
for bit. Weights are packed [N/16][K/4][16][4] (zero-padded), so one 64-byte load feeds 16
outputs and no kernel ends a row in a horizontal sum.

GEMV also carries rn_gemv_wq, the weight-only linear's float x int8 product (int8_weight_only.py).
"""

from __future__ import annotations

import numpy as np

BLOCK_N, BLOCK_K = 16, 4


def pack_int8(w_q: np.ndarray) -> tuple[np.ndarray, int, int]:
    """w_q [N, K] int8 -> (the packed array, N blocks, K quads)."""
    n, k = w_q.shape
    nb, k4 = -(-n // BLOCK_N), -(-k // BLOCK_K)
    padded = np.zeros((nb * BLOCK_N, k4 * BLOCK_K), np.int8)
    padded[:n, :k] = w_q
    blocks = padded.reshape(nb, BLOCK_N, k4, BLOCK_K).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(blocks).ravel(), nb, k4


GEMV = r"""
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#include <immintrin.h>
#define RQ_VNNI 1
#define RQ_GEMV_ISA "avx512vnni"
#elif defined(__AVX2__)
#include <immintrin.h>
#define RQ_GEMV_ISA "avx2"
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#define RQ_GEMV_ISA "neon-sdot"
#else
#define RQ_GEMV_ISA "c"
#endif
#ifndef RQ_VNNI
#define RQ_VNNI 0
#endif
const char rnnedge_gemv_isa[] = RQ_GEMV_ISA;

#if RQ_VNNI
/* where the 16 sums of a block go: stored as int32 (q == 0) or requantized into int8 */
typedef struct {
    const int32_t *bias;
    const float *scale;
    float lo, hi; /* the output range minus its zero point */
    int zp, n; /* output zero point, outputs */
    int8_t *y;
} rq_out_s8;

/* block b's sums s (minus (128 + zp) x its row sums) to acc, or (q) requantized into q->y as
 * requantize_lines (export/c/int8.py) does: rint((s + bias) * scale) clamped, + zp. The int32
 * to float conversion, the product and rint (roundscale, nearest even) are the same IEEE
 * operations as the C loop, so the integers are the same */
RN_INLINE void rq_vnni_out(__m512i s, int b, const int32_t *rowsum, __m512i off, int32_t *acc,
    const rq_out_s8 *q)
{
    s = _mm512_sub_epi32(s, _mm512_mullo_epi32(off,
        _mm512_loadu_si512((const void *)(rowsum + 16 * b))));
    if (!q) {
        _mm512_storeu_si512((void *)(acc + 16 * b), s);
        return;
    }
    {
        const int left = q->n - 16 * b;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 v = _mm512_cvtepi32_ps(_mm512_add_epi32(s,
            _mm512_maskz_loadu_epi32(m, (const void *)(q->bias + 16 * b))));
        v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, (const void *)(q->scale + 16 * b)));
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(q->lo)), _mm512_set1_ps(q->hi));
        _mm512_mask_cvtepi32_storeu_epi8((void *)(q->y + 16 * b), m,
            _mm512_add_epi32(_mm512_cvttps_epi32(v), _mm512_set1_epi32(q->zp)));
    }
}

/* vpdpbusd on uint8 (x + 128) four to an int32, minus (128 + zp) x the row sums: four blocks
 * (64 outputs) a pass, so one x broadcast feeds four independent chains (vpdpbusd's latency
 * is 5 cycles); the blocks left over one at a time, their k split over four chains */
RN_INLINE void rq_vnni_s8(const int8_t *x, int zp, const int8_t *w, const int32_t *rowsum,
    int nb, int k4, int32_t *acc, int32_t *tmp, const rq_out_s8 *q)
{
    const __m512i off = _mm512_set1_epi32(128 + zp);
    const long bs = (long)k4 * 64; /* bytes per block */
    const int nb4 = nb - nb % 4, k44 = k4 - k4 % 4; /* (GCC warns on j + 4 <= k4 forms) */
    uint8_t *xu = (uint8_t *)tmp;
    for (int i = 0; i < 4 * k4; i++) xu[i] = (uint8_t)(x[i] ^ 0x80); /* little-endian */
    for (int b = 0; b < nb4; b += 4) {
        const int8_t *w0 = w + b * bs;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < k4; j++) {
            const __m512i xv = _mm512_set1_epi32(tmp[j]);
            const int8_t *wj = w0 + 64 * j;
            s0 = _mm512_dpbusd_epi32(s0, xv, _mm512_loadu_si512((const void *)wj));
            s1 = _mm512_dpbusd_epi32(s1, xv, _mm512_loadu_si512((const void *)(wj + bs)));
            s2 = _mm512_dpbusd_epi32(s2, xv, _mm512_loadu_si512((const void *)(wj + 2 * bs)));
            s3 = _mm512_dpbusd_epi32(s3, xv, _mm512_loadu_si512((const void *)(wj + 3 * bs)));
        }
        rq_vnni_out(s0, b, rowsum, off, acc, q);
        rq_vnni_out(s1, b + 1, rowsum, off, acc, q);
        rq_vnni_out(s2, b + 2, rowsum, off, acc, q);
        rq_vnni_out(s3, b + 3, rowsum, off, acc, q);
    }
    for (int b = nb4; b < nb; b++) {
        const int8_t *wb = w + b * bs;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < k44; j += 4) {
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(tmp[j]),
                _mm512_loadu_si512((const void *)(wb + 64 * j)));
            s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(tmp[j + 1]),
                _mm512_loadu_si512((const void *)(wb + 64 * j + 64)));
            s2 = _mm512_dpbusd_epi32(s2, _mm512_set1_epi32(tmp[j + 2]),
                _mm512_loadu_si512((const void *)(wb + 64 * j + 128)));
            s3 = _mm512_dpbusd_epi32(s3, _mm512_set1_epi32(tmp[j + 3]),
                _mm512_loadu_si512((const void *)(wb + 64 * j + 192)));
        }
        for (int j = k44; j < k4; j++)
            s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(tmp[j]),
                _mm512_loadu_si512((const void *)(wb + 64 * j)));
        s0 = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
        rq_vnni_out(s0, b, rowsum, off, acc, q);
    }
}
#endif

/* acc[n] = sum_k (x[k] - zp) w[n][k] for n < 16 nb, w packed [nb][k4][16][4] (export/c/
 * simd.py), x holding k4 * 4 values (the padding's weights are 0); rowsum[n] = sum_k w[n][k];
 * tmp: 2 * k4 int32 of scratch */
RN_INLINE void rq_gemv_s8(const int8_t *x, int zp, const int8_t *w, const int32_t *rowsum,
    int nb, int k4, int32_t *acc, int32_t *tmp)
{
#if RQ_VNNI
    rq_vnni_s8(x, zp, w, rowsum, nb, k4, acc, tmp, 0);
#elif defined(__AVX2__)
    /* (x - zp) as int16, four to an int64 lane; vpmaddwd sums pairs, one hadd at the end */
    for (int j = 0; j < k4; j++) {
        tmp[2 * j] = (int32_t)((uint32_t)(uint16_t)(int16_t)(x[4 * j] - zp)
            | (uint32_t)(uint16_t)(int16_t)(x[4 * j + 1] - zp) << 16);
        tmp[2 * j + 1] = (int32_t)((uint32_t)(uint16_t)(int16_t)(x[4 * j + 2] - zp)
            | (uint32_t)(uint16_t)(int16_t)(x[4 * j + 3] - zp) << 16);
    }
    (void)rowsum;
    for (int b = 0; b < nb; b++) {
        const int8_t *wb = w + (long)b * k4 * 64;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int j = 0; j < k4; j++) {
            const __m256i xv = _mm256_set1_epi64x(
                (long long)((uint64_t)(uint32_t)tmp[2 * j + 1] << 32 | (uint32_t)tmp[2 * j]));
            const int8_t *wj = wb + 64 * j; /* outputs 0-3, 4-7, 8-11, 12-15: 16 bytes each */
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xv,
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wj))));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(xv,
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wj + 16)))));
            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(xv,
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wj + 32)))));
            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(xv,
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wj + 48)))));
        }
        /* a0 = [o0 o0 o1 o1 | o2 o2 o3 o3] (halves of each output's sum): pair them up */
        _mm256_storeu_si256((__m256i *)(acc + 16 * b),
            _mm256_permute4x64_epi64(_mm256_hadd_epi32(a0, a1), 0xD8));
        _mm256_storeu_si256((__m256i *)(acc + 16 * b + 8),
            _mm256_permute4x64_epi64(_mm256_hadd_epi32(a2, a3), 0xD8));
    }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
    /* int8 x, four to an int32; sum x w - zp rowsum */
    for (int j = 0; j < k4; j++)
        tmp[j] = (int32_t)((uint32_t)(uint8_t)x[4 * j] | (uint32_t)(uint8_t)x[4 * j + 1] << 8
            | (uint32_t)(uint8_t)x[4 * j + 2] << 16 | (uint32_t)(uint8_t)x[4 * j + 3] << 24);
    for (int b = 0; b < nb; b++) {
        const int8_t *wb = w + (long)b * k4 * 64;
        int32x4_t s0 = vdupq_n_s32(0), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < k4; j++) {
            const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(tmp[j]));
            s0 = vdotq_s32(s0, vld1q_s8(wb + 64 * j), xv);
            s1 = vdotq_s32(s1, vld1q_s8(wb + 64 * j + 16), xv);
            s2 = vdotq_s32(s2, vld1q_s8(wb + 64 * j + 32), xv);
            s3 = vdotq_s32(s3, vld1q_s8(wb + 64 * j + 48), xv);
        }
        {
            const int32x4_t z = vdupq_n_s32(zp);
            const int32_t *r = rowsum + 16 * b;
            vst1q_s32(acc + 16 * b, vmlsq_s32(s0, z, vld1q_s32(r)));
            vst1q_s32(acc + 16 * b + 4, vmlsq_s32(s1, z, vld1q_s32(r + 4)));
            vst1q_s32(acc + 16 * b + 8, vmlsq_s32(s2, z, vld1q_s32(r + 8)));
            vst1q_s32(acc + 16 * b + 12, vmlsq_s32(s3, z, vld1q_s32(r + 12)));
        }
    }
#else
    int16_t *xs = (int16_t *)tmp;
    (void)rowsum;
    for (int k = 0; k < 4 * k4; k++) xs[k] = (int16_t)(x[k] - zp);
    for (int b = 0; b < nb; b++) {
        const int8_t *wb = w + (long)b * k4 * 64;
        int32_t s[16] = {0};
        for (int j = 0; j < k4; j++)
            for (int l = 0; l < 16; l++)
                for (int t = 0; t < 4; t++)
                    s[l] += (int32_t)xs[4 * j + t] * (int32_t)wb[64 * j + 4 * l + t];
        for (int l = 0; l < 16; l++) acc[16 * b + l] = s[l];
    }
#endif
}

/* y[n] = clamp(rint((acc[n] + bias[n]) * scale[n]), lo, hi) + zp for n < n_out, acc being
 * rq_gemv_s8's sums: an int8 linear whose acc + bias fits int32 (export/c/int8.py), the
 * requantization in the VNNI kernel's epilogue (the sums never leave the registers), else
 * the loop of requantize_lines after rq_gemv_s8 */
RN_INLINE void rq_linear_s8(const int8_t *x, int zp, const int8_t *w, const int32_t *rowsum,
    int nb, int k4, const int32_t *bias, const float *scale, float lo, float hi, int yzp,
    int n_out, int8_t *y, int32_t *acc, int32_t *tmp)
{
#if RQ_VNNI
    const rq_out_s8 q = {bias, scale, lo, hi, yzp, n_out, y};
    rq_vnni_s8(x, zp, w, rowsum, nb, k4, acc, tmp, &q);
#else
    rq_gemv_s8(x, zp, w, rowsum, nb, k4, acc, tmp);
    for (int n = 0; n < n_out; n++)
        y[n] = (int8_t)rq_rint_clamp32((float)(acc[n] + bias[n]) * scale[n], lo, hi, yzp);
#endif
}

/* the weight-only linear (export/c/int8_weight_only.py): y[n] += sum_k x[k] ((float)wq[k nn + n]
 * s[n]), k in order, each product and sum rounded as written (a multiply, a multiply, an add:
 * -ffp-contract=off). The outputs go 64 at a time (AVX-512: 4 x 16; AVX2: 8 x 8) in registers
 * across every k, the int8 weights widened in the register; the rest (and CPUs without either)
 * as the plain loop. Every path does the same operations per output: the same bits (measured:
 * 1.8x the plain loop, which re-read and re-stored y for every k, at K 256 x N 1024) */
#if defined(__AVX2__) && !(defined(__AVX512F__) && defined(__FMA__))
#include <immintrin.h>
#endif
RN_INLINE void rn_gemv_wq(const float *restrict x, const int8_t *restrict wq,
    const float *restrict s, int kk, int nn, float *restrict y)
{
    int n0 = 0;
#if defined(__AVX512F__) && defined(__FMA__)
    for (; n0 + 64 <= nn; n0 += 64) {
        __m512 a[4], sc[4];
        for (int i = 0; i < 4; i++) {
            a[i] = _mm512_loadu_ps(y + n0 + 16 * i);
            sc[i] = _mm512_loadu_ps(s + n0 + 16 * i);
        }
        for (int k = 0; k < kk; k++) {
            const __m512 xk = _mm512_set1_ps(x[k]);
            const int8_t *w = wq + (long)k * nn + n0;
            for (int i = 0; i < 4; i++) {
                const __m512 wf = _mm512_cvtepi32_ps(
                    _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + 16 * i))));
                a[i] = _mm512_add_ps(a[i], _mm512_mul_ps(xk, _mm512_mul_ps(wf, sc[i])));
            }
        }
        for (int i = 0; i < 4; i++) _mm512_storeu_ps(y + n0 + 16 * i, a[i]);
    }
#elif defined(__AVX2__)
    for (; n0 + 64 <= nn; n0 += 64) {
        __m256 a[8], sc[8];
        for (int i = 0; i < 8; i++) {
            a[i] = _mm256_loadu_ps(y + n0 + 8 * i);
            sc[i] = _mm256_loadu_ps(s + n0 + 8 * i);
        }
        for (int k = 0; k < kk; k++) {
            const __m256 xk = _mm256_set1_ps(x[k]);
            const int8_t *w = wq + (long)k * nn + n0;
            for (int i = 0; i < 8; i++) {
                const __m256 wf = _mm256_cvtepi32_ps(
                    _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(w + 8 * i))));
                a[i] = _mm256_add_ps(a[i], _mm256_mul_ps(xk, _mm256_mul_ps(wf, sc[i])));
            }
        }
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(y + n0 + 8 * i, a[i]);
    }
#endif
    for (int k = 0; k < kk; k++) {
        const float xk = x[k];
        const int8_t *wk = wq + (long)k * nn;
        for (int n = n0; n < nn; n++) y[n] += xk * ((float)wk[n] * s[n]);
    }
}
"""
