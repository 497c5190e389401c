"""Faster forms of two int8 kernels of the generated C, each the same integers as the numpy spec
(runtime/quant/int8.py) by construction, measured at GRU 40 -> 128 (docs/native.md):

- `rq_lut_s8`: an int8 -> int8 lookup table (sigmoid, tanh) over a whole tensor. GCC leaves
  `out[i] = table[in[i] + 128]` scalar; with AVX-512 VBMI, `vpermi2b` looks up 64 bytes at a
  time in two 128-byte halves of the table, bit 7 of the index picking the half.
- `rq_quantize32`: QUANTIZE (float -> int8/int16) with the spec's round-half-away, in int32:
  the rounded value clamped in float to the output range (minus zp) before the conversion
  (what the int64 rq_quantize's clamp gives, inf and NaN included), which vectorises where
  the int64 conversion does not.
"""

from __future__ import annotations

from rnnedge.export.c.emitter import CEmitter, Tensor, c_float
from rnnedge.runtime.quant.plan import QParams

FUSED = r"""
#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif
/* y[i] = table[x[i] + 128] for int8 x, y and a 256-entry int8 table */
RN_INLINE void rq_lut_s8(const int8_t *x, int8_t *y, int n, const int8_t *table)
{
    int i = 0;
#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
    const __m512i t0 = _mm512_loadu_si512((const void *)table);
    const __m512i t1 = _mm512_loadu_si512((const void *)(table + 64));
    const __m512i t2 = _mm512_loadu_si512((const void *)(table + 128));
    const __m512i t3 = _mm512_loadu_si512((const void *)(table + 192));
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (; i + 64 <= n; i += 64) {
        /* x + 128 as uint8 is x ^ 0x80; bits 0-6 index a 128-byte half, bit 7 picks it */
        const __m512i v = _mm512_xor_si512(_mm512_loadu_si512((const void *)(x + i)), flip);
        const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1);
        const __m512i hi = _mm512_permutex2var_epi8(t2, v, t3);
        const __m512i r = _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi);
        _mm512_storeu_si512((void *)(y + i), r);
    }
#endif
    for (; i < n; i++) y[i] = table[x[i] + 128];
}

/* rq_quantize in int32 (round half away from zero): the rounded value is clamped in float to
 * [lo - zp, hi - zp] (exact: small integers) before the conversion, so +-inf and values
 * beyond int32 saturate as the int64 clamp does, and NaN goes to zp as there; one clamp and
 * a sign copy instead of a select chain and two clamps (GCC's vector code halves) */
RN_INLINE int32_t rq_quantize32(float x, float scale, int32_t zp, int32_t lo, int32_t hi)
{
    const float v = x / scale, a = floorf(fabsf(v) + 0.5f);
    const float flo = (float)(lo - zp), fhi = (float)(hi - zp);
    float r = v == v ? copysignf(a, v) : 0.0f;
    r = r > flo ? r : flo;
    return (int32_t)(r < fhi ? r : fhi) + zp;
}
"""


# Between the helpers and the step functions: GCC vectorises loops for 256-bit registers even
# where the CPU has 512 (its tuning for every Intel core since Skylake-X prefers 256), so the
# step's elementwise loops (gate math, QUANTIZE, requantization, tables) ran in ymm. 512-bit
# loops measured GRU 40 -> 128 int8 0.91 -> 0.76 us and float 2.08 -> 2.00 us (a C loop, same
# run; docs/native.md). Only the step functions: the helpers before it are written for their
# width already, and elementwise IEEE operations give the same numbers in any width.
VECTOR_WIDTH = """
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#pragma GCC target("prefer-vector-width=512")
#endif
"""


def dequantize_to_float(em: CEmitter, t: Tensor) -> Tensor:
    q = t.q
    return em.elementwise([t], t.shape, None, f"{c_float(q.scale)} * (float)(a0 - {q.zp})")


def lut_s8(em: CEmitter, src: Tensor, out: QParams, table: str) -> Tensor | None:
    """The table lookup of int8 `src` into int8 `out` as one rq_lut_s8 call; None when the
    tensors are not both int8 (the caller emits the generic loop)."""
    if src.q is None or src.q.dtype != "int8" or out.dtype != "int8":
        return None
    y = em.scratch(src.shape, out)
    em.line(f"rq_lut_s8({src.var}, {y.var}, {src.size}, {table});")
    return y


def quantize32(em: CEmitter, t: Tensor, q: QParams) -> Tensor:
    """QUANTIZE of float `t` to `q` (int8 or int16) through rq_quantize32."""
    expr = f"rq_quantize32(a0, {c_float(q.scale)}, {q.zp}, {q.lo}, {q.hi})"
    return em.elementwise([t], t.shape, q, expr, "int32_t")
