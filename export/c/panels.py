"""The float matrix-vector product of the generated C (`rn_gemv`) and the layout of its
weights: w^T [K][N] in column panels (pack_panels here, rn_panel in C), each panel's rows one
after another so a kernel that holds the panel's outputs in registers reads its weights in
address order. rn_gemm (gemm.py, the batched step) reads the same panels and sums each output
the same way, so the batched float step equals the single one bit for bit.

Every output is summed in k order with RN_MADD (prelude.py), except those of a last panel
narrower than 16 columns (a classifier head), kept [width][K] and summed as dot products by
rn_gemv_narrow (16 lane sums added in a fixed tree), in every build alike.
"""

from __future__ import annotations

import numpy as np

PANEL_WIDTHS = (256, 128, 32, 16)  # then the rest (< 16): rn_panel below


def panel_widths(n: int) -> list[int]:
    """The widths of the column panels of an N-column weight, in order."""
    out: list[int] = []
    while n - sum(out) >= 256:
        out.append(256)
    for width, most in ((128, 1), (32, 3), (16, 1)):
        for _ in range(most):
            if n - sum(out) >= width:
                out.append(width)
    if n - sum(out):
        out.append(n - sum(out))
    return out


def pack_panels(w: np.ndarray) -> np.ndarray:
    """A constant float weight w [N, K] as rn_gemv and rn_gemm read it: w^T [K][N] split into
    column panels, each [K][width] row after row (one contiguous stream per panel), except a
    last panel narrower than 16, kept [width][K] (rn_gemv_narrow's dot products)."""
    wt = np.asarray(w, np.float32).T
    parts, n0 = [], 0
    for width in panel_widths(wt.shape[1]):
        panel = wt[:, n0 : n0 + width]
        parts.append(np.ascontiguousarray(panel.T if width < 16 else panel).ravel())
        n0 += width
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


PANELS = r"""
/* y[n] += sum_{k in [k0, k0 + 4)} x[k] wt[k * nn + n], each y[n] summed in k order (so the
 * result does not depend on the vector width); four k per pass to load and store y less */
RN_INLINE void rn_gemv4(const float *restrict x, const float *restrict wt, int k0, int nn,
    float *restrict y)
{
    const float x0 = x[k0], x1 = x[k0 + 1], x2 = x[k0 + 2], x3 = x[k0 + 3];
    const float *w0 = wt + k0 * nn, *w1 = w0 + nn, *w2 = w1 + nn, *w3 = w2 + nn;
    for (int n = 0; n < nn; n++) {
        float a = y[n];
        a = RN_MADD(a, x0, w0[n]);
        a = RN_MADD(a, x1, w1[n]);
        a = RN_MADD(a, x2, w2[n]);
        a = RN_MADD(a, x3, w3[n]);
        y[n] = a;
    }
}

/* A constant weight w [N][K] is stored transposed in column panels (export/c/panels.py,
 * pack_panels): the columns split into panels of 256, then one of 128, then 32s, then one of
 * 16, then the rest (< 16), each panel [K][width] with its rows one after another (the rest:
 * [width][K], rn_gemv_narrow's dot products), so a kernel holding a panel's outputs in
 * registers reads its weights in address order (boards/native_floor.c measures that order
 * and the [K][N] rows, 1.5 KB apart per k at GRU 40 -> 128, from L2: docs/native.md).
 * rn_panel: the address of (k = 0, column n) and, in *ld, the floats between rows of its
 * panel */
RN_INLINE const float *rn_panel(const float *wt, int kk, int nn, int n, int *ld)
{
    const int a = nn - nn % 256, b = a + (nn - a >= 128 ? 128 : 0);
    const int c = nn - (nn - b) % 32, d = c + (nn - c >= 16 ? 16 : 0);
    int start = d;
    if (n < a) start = n - n % 256, *ld = 256;
    else if (n < b) start = a, *ld = 128;
    else if (n < c) start = n - (n - b) % 32, *ld = 32;
    else if (n < d) start = c, *ld = 16;
    else { /* the narrow panel, [ld][K]: column n's row */
        *ld = nn - d;
        return wt + (long)d * kk + (long)(n - d) * kk;
    }
    return wt + (long)start * kk + (n - start);
}

#if defined(__AVX512F__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* y[i] += sum_k x[k] w[i * kk + k] for i < ld < 16: the last panel when it is narrower than
 * 16 columns (a classifier head's 10 outputs), stored [ld][K] (rows as in the model), each
 * output a dot product: 16 lane sums (lane l: the k = l mod 16, in k order, from 0) added in
 * a fixed tree (l + l+8, + l+4, + l+2, + l+1), then to y. One chain of kk dependent fused
 * multiply-adds per [K][N] column measured 0.13 us at GRU 40 -> 128 (128 x 4 cycles), this
 * 0.04. rn_gemv and rn_gemm (its tail) both sum these outputs here: equal bit for bit */
RN_INLINE void rn_gemv_narrow(const float *restrict x, const float *restrict w, int kk, int ld,
    float *restrict y)
{
    const int k16 = kk - kk % 16;
#if defined(__AVX512F__) && defined(__FMA__)
    const __mmask16 m = (__mmask16)((1u << (kk % 16)) - 1);
    for (int i = 0; i < ld; i++) {
        const float *wi = w + (long)i * kk;
        __m512 a = _mm512_setzero_ps();
        __m256 s8;
        __m128 s4, s2;
        for (int k = 0; k < k16; k += 16)
            a = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(wi + k), a);
        if (m)
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + k16),
                _mm512_maskz_loadu_ps(m, wi + k16), a);
        s8 = _mm256_add_ps(_mm512_castps512_ps256(a),
            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
        s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
        s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        y[i] += _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
    }
#else
    for (int i = 0; i < ld; i++) {
        const float *wi = w + (long)i * kk;
        float a[16];
        for (int l = 0; l < 16; l++) a[l] = 0.0f;
        for (int k = 0; k < k16; k += 16)
            for (int l = 0; l < 16; l++) a[l] = RN_MADD(a[l], x[k + l], wi[k + l]);
        for (int l = 0; l < kk % 16; l++) a[l] = RN_MADD(a[l], x[k16 + l], wi[k16 + l]);
        for (int l = 0; l < 8; l++) a[l] = a[l] + a[l + 8];
        for (int l = 0; l < 4; l++) a[l] = a[l] + a[l + 4];
        for (int l = 0; l < 2; l++) a[l] = a[l] + a[l + 2];
        y[i] += a[0] + a[1];
    }
#endif
}

#if defined(__AVX512F__) && defined(__FMA__)
/* rn_gemv_rNV: y[i] += sum_k x[k] w[k * 16 NV + i] for i < 16 NV (one panel of 16 NV columns),
 * the NV vectors of y held in registers across every k (a constant count, so they stay in
 * registers), each summed in k order with one fused multiply-add per k (RN_MADD's numbers),
 * x[k] broadcast once per NV FMAs, the panel read in address order */
#define RN_GEMV_REGS(NV) \
    RN_INLINE void rn_gemv_r##NV(const float *restrict x, const float *restrict w, int kk, \
        float *restrict y) \
    { \
        __m512 a[NV]; \
        for (int i = 0; i < NV; i++) a[i] = _mm512_loadu_ps(y + 16 * i); \
        for (int k = 0; k < kk; k++) { \
            const __m512 xk = _mm512_set1_ps(x[k]); \
            const float *wk = w + (long)k * 16 * NV; \
            for (int i = 0; i < NV; i++) \
                a[i] = _mm512_fmadd_ps(xk, _mm512_loadu_ps(wk + 16 * i), a[i]); \
        } \
        for (int i = 0; i < NV; i++) _mm512_storeu_ps(y + 16 * i, a[i]); \
    }
RN_GEMV_REGS(16)
RN_GEMV_REGS(8)
RN_GEMV_REGS(2)
RN_GEMV_REGS(1)

/* y[n] += sum_k x[k] w[k][n] (wt in panels), each y[n] summed in k order: a panel at a time
 * (256 outputs in 16 registers: measured faster than 8 or 24 at GRU 40 -> 128), the last
 * panel (< 16 columns) masked */
RN_INLINE void rn_gemv(const float *restrict x, const float *restrict wt, int kk, int nn,
    float *restrict y)
{
    int n = 0;
    for (; n + 256 <= nn; n += 256) rn_gemv_r16(x, wt + (long)n * kk, kk, y + n);
    for (; n + 128 <= nn; n += 128) rn_gemv_r8(x, wt + (long)n * kk, kk, y + n);
    for (; n + 32 <= nn; n += 32) rn_gemv_r2(x, wt + (long)n * kk, kk, y + n);
    if (n + 16 <= nn) {
        rn_gemv_r1(x, wt + (long)n * kk, kk, y + n);
        n += 16;
    }
    if (n < nn) rn_gemv_narrow(x, wt + (long)n * kk, kk, nn - n, y + n);
}
#else
/* y[n] += sum_k x[k] w[k][n] for k < kk (wt in panels), each y[n] summed in k order: per
 * panel, rn_gemv4 over the k in fours, then the rest (a last panel under 16 columns:
 * rn_gemv_narrow); one function, so the compiler checks aliasing once */
RN_INLINE void rn_gemv(const float *restrict x, const float *restrict wt, int kk, int nn,
    float *restrict y)
{
    for (int n = 0; n < nn;) {
        int ld, k = 0;
        const float *w = rn_panel(wt, kk, nn, n, &ld);
        if (ld < 16) {
            rn_gemv_narrow(x, w, kk, ld, y + n);
            break;
        }
        for (; k + 4 <= kk; k += 4) rn_gemv4(x, w, k, ld, y + n);
        for (; k < kk; k++) {
            const float xk = x[k], *wk = w + (long)k * ld;
            for (int i = 0; i < ld; i++) y[n + i] = RN_MADD(y[n + i], xk, wk[i]);
        }
        n += ld;
    }
}
#endif
"""
