"""The int8 / int16 kernels of TFLite's builtin ops in fixed point (fixed.py's primitives): the
arithmetic of LiteRT without the XNNPACK delegate, and of LiteRT on arm64 (where XNNPACK
rounds int8 as these do, docs/arm64.md). Int8Executor(rounding="tflite") uses them for every
int8 op; the default ("fp32") only for int16 ops, which XNNPACK does not take.

Followed from TFLite's kernels (default build, double rounding, no TFLITE_SINGLE_ROUNDING):
  FULLY_CONNECTED  kernel_util.cc PopulateConvolutionQuantizationParams: per output channel
                   m[n] = double(x_s) double(w_s[n]) / double(y_s), QuantizeMultiplier;
                   y = MBQM(acc, q[n], shift[n]) + y_zp (reference_integer_ops)
  ADD / SUB        add.cc / sub.cc PrepareGeneralSubOp: inputs shifted left by 20 (int8 out)
                   or 15 (int16 out), each scaled by s_i / (2 max(s1, s2)), summed, scaled
                   by 2 max(s1, s2) / (2^shift y_s); SUB negates input 2's int32 multiplier
                   (op_sign), which rounds ties differently from negating the product
  MUL              mul.cc: MBQM((a - a_zp)(b - b_zp), double(a_s) double(b_s) / double(y_s))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnedge.runtime.quant.fixed import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize_fn,
    ruy_requantize_fn,
)
from rnnedge.runtime.quant.plan import QParams

F32 = np.float32
I64 = np.int64
Kernel = Callable[..., np.ndarray]
LEFT_SHIFT = {"int8": 20, "int16": 15}  # add.cc / sub.cc, by output type


def scale_of(p: QParams) -> float:
    """A tensor's scale as the file stores it (float32), widened to double as TFLite does."""
    return float(F32(p.scale))


def linear_requantize(
    x: QParams, w_scale: np.ndarray, out: QParams
) -> Callable[[np.ndarray], np.ndarray]:
    """FULLY_CONNECTED int8 per output channel: acc (int32, bias in) -> MBQM(acc, q[n], s[n])."""
    w = np.asarray(w_scale, np.float64).astype(F32).astype(np.float64)
    return ruy_requantize_fn(scale_of(x) * w / scale_of(out))


def fixed_add_sub(sign: int, ins: list[QParams], out: QParams) -> Kernel:
    """ADD (sign 1) / SUB (sign -1) with int8 or int16 inputs and output."""
    a, b = ins
    shift = LEFT_SHIFT[out.dtype]
    twice_max = 2 * max(scale_of(a), scale_of(b))
    qa, sa = quantize_multiplier(scale_of(a) / twice_max)
    qb, sb = quantize_multiplier(scale_of(b) / twice_max)
    qb *= sign  # sub.cc: input2_multiplier *= op_sign
    fo = requantize_fn(twice_max / ((1 << shift) * scale_of(out)))

    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xa = multiply_by_quantized_multiplier((x.astype(I64) - a.zp) << shift, qa, sa)
        yb = multiply_by_quantized_multiplier((y.astype(I64) - b.zp) << shift, qb, sb)
        return np.clip(fo(xa + yb) + out.zp, out.lo, out.hi)

    return kernel


def fixed_mul(ins: list[QParams], out: QParams) -> Kernel:
    a, b = ins
    f = requantize_fn(scale_of(a) * scale_of(b) / scale_of(out))

    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        prod = (x.astype(I64) - a.zp) * (y.astype(I64) - b.zp)
        return np.clip(f(prod) + out.zp, out.lo, out.hi)

    return kernel
