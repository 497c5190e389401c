"""TFLite's fixed-point arithmetic in numpy, bit for bit: the rounding every int8 kernel does.

Followed from tensorflow/lite/kernels/internal/common.h and quantization_util.cc (the default
build, without TFLITE_SINGLE_ROUNDING), gemmlowp's fixedpoint.h, and for the LOGISTIC / TANH
int8 tables kernels/activations.cc (Prepare calls LUTPopulate<int8_t> for kReference and
kGenericOptimized):
  QuantizeMultiplier(m)                 m = q * 2^shift, q in [2^30, 2^31) an int32
  SaturatingRoundingDoublingHighMul     (a * b + nudge) / 2^31, truncated, nudge = +-2^30
  RoundingDivideByPOT(x, e)             x / 2^e rounded half away from zero
  MultiplyByQuantizedMultiplier(x,q,s)  RDBPOT(SRDHM(x * 2^max(s,0), q), max(-s,0))
All take int64 arrays holding int32 values, so nothing here overflows silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

I64 = np.int64
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
RANGES = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (INT32_MIN, INT32_MAX)}


def round_away(x: np.ndarray | float) -> np.ndarray:
    """std::round / TfLiteRound: half away from zero (numpy's rint rounds half to even)."""
    x = np.asarray(x)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: (q, shift) with m ~= q * 2^(shift - 31), q an int32."""
    if m == 0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = int(round_away(frac * 2**31))
    if q == 2**31:  # frac rounded up to 1
        q //= 2
        shift += 1
    if shift < -31:  # too small to represent: TFLite flushes it to zero
        return 0, 0
    if shift > 30:  # too large: TFLite saturates (quantization_util.cc)
        return INT32_MAX, 30
    return q, shift


def srdhm(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul for int32 a, b (held in int64)."""
    a, b = np.asarray(a, I64), np.asarray(b, I64)
    ab = a * b  # |a b| <= 2^62: exact in int64
    low = I64((1 << 31) - 1)
    v = ab + (1 << 30) - (ab < 0) * low  # nudge 2^30, or 1 - 2^30 when ab < 0
    high = (v + (v < 0) * low) >> 31  # C++ integer division truncates toward zero
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, I64(INT32_MAX), high) if overflow.any() else high


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, ties away from zero."""
    x, e = np.asarray(x, I64), np.asarray(exponent, I64)
    mask = (I64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    x: np.ndarray, q: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (common.h): x * q * 2^(shift - 31), rounded."""
    shift = np.asarray(shift, I64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(srdhm(np.asarray(x, I64) << left, q), right)


def fp32_requantize_fn(real: float | np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """x -> rint(float32(x) * float32(real)), half to even: the "fp32" requantization of
    XNNPACK's int8 kernels (LiteRT's default delegate) and of onnxruntime's. `real` scalar
    or per channel (last axis)."""
    r = np.asarray(real, np.float64).astype(np.float32)
    return lambda x: np.rint(np.asarray(x).astype(np.float32) * r).astype(I64)


def requantize_fn(real: float | np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """x -> round(x * real) by MultiplyByQuantizedMultiplier; `real` scalar or per channel."""
    pairs = [quantize_multiplier(float(m)) for m in np.atleast_1d(real)]
    q = np.array([p[0] for p in pairs], I64)
    s = np.array([p[1] for p in pairs], I64)
    if np.ndim(real) == 0:
        q, s = q[0], s[0]
    return lambda x: multiply_by_quantized_multiplier(x, q, s)


def ruy_requantize_fn(real: float | np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """x -> SRDHM(x 2^max(s,0), q), then a rounding right shift by max(-s,0) with ties toward
    +inf (Arm's sqrdmulh + srshl): the requantization of TFLite's optimized int8
    FULLY_CONNECTED (ruy). Measured against LiteRT's builtin kernels: RoundingDivideByPOT's
    ties away from zero gave 1 step more negative at exact ties. `real` scalar or per channel."""
    pairs = [quantize_multiplier(float(m)) for m in np.atleast_1d(real)]
    q = np.array([p[0] for p in pairs], I64)
    s = np.array([p[1] for p in pairs], I64)
    if np.ndim(real) == 0:
        q, s = q[0], s[0]
    left, right = np.maximum(s, 0), np.maximum(-s, 0)
    half = (I64(1) << right) >> 1  # 0 when there is no right shift

    def requant(x: np.ndarray) -> np.ndarray:
        return (srdhm(np.asarray(x, I64) << left, q) + half) >> right

    return requant


def lookup_table(
    f: Callable[[np.ndarray], np.ndarray],
    in_scale: float,
    in_zp: int,
    out_scale: float,
    out_zp: int,
    in_dtype: str = "int8",
    out_dtype: str = "int8",
) -> np.ndarray:
    """TFLite LUTPopulate (kernels/internal/common.h), the int8 LOGISTIC / TANH kernels' table:
    for every input value q, dequantize (float32), apply f, requantize with TfLiteRound,
    clamp. Indexed by q - min(in_dtype). An int16 input gets the same rule over all 65,536
    values (TFLite's own int16 kernels interpolate a 513-entry table instead)."""
    lo, hi = RANGES[in_dtype]
    olo, ohi = RANGES[out_dtype]
    q = np.arange(lo, hi + 1, dtype=np.int32)
    x = np.float32(in_scale) * (q - np.int32(in_zp)).astype(np.float32)
    y = f(x).astype(np.float32)
    r = round_away(y * (np.float32(1) / np.float32(out_scale))).astype(np.int64) + out_zp
    return np.clip(r, olo, ohi)
