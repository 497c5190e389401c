"""Weight-only int8 in C (quantize/weight_only.py): a linear whose activations the plan keeps
float, its weight int8 per output channel. The spec (runtime/quant/int8.py, _weight_only) runs
the float linear with the weight w_q * s[n], exact in float32; so does this kernel, the product
formed in the loop: y[n] = b[n] + sum_k x[k] (w_q[k][n] * s[n]), k in order, as the float
linear (float_ops.linear) sums; simd.py's rn_gemv_wq holds 64 outputs in SIMD registers
across every k (the same operations, so the same bits). Not bit for bit the numpy matmul
(BLAS sums in its own order): within 1e-6 of it, relative to the output
(tests/quantize/test_int8_weight_only.py)."""

from __future__ import annotations

import numpy as np

from rnnedge.export.c.emitter import CEmitter, Tensor
from rnnedge.export.c.float_ops import linear_rows
from rnnedge.export.c.fused import dequantize_to_float, quantize32
from rnnedge.runtime.graph import Node
from rnnedge.runtime.quant.plan import QuantPlan, quantize_weight


def _float(em: CEmitter, t: Tensor) -> Tensor:
    return t if t.q is None else dequantize_to_float(em, t)


def linear_weight_only(
    em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...], plan: QuantPlan
) -> Tensor:
    t = plan.weight(node.outputs[0])
    if t is None or t.tensor != node.inputs[1]:
        raise ValueError(f"quant.json: no int8 weight for linear {node.outputs[0]!r}")
    x = _float(em, ins[0])
    w = np.asarray(em.constants[t.tensor], np.float32)
    n_out, k_in = w.shape
    wq = em.const(np.ascontiguousarray(quantize_weight(w, t.scale).T), "int8_t", "w_q^T [K][N]")
    sk = em.const(np.asarray(t.scale, np.float32), "float", "w scale [N]")
    init = f"{_float(em, ins[2]).var}[n]" if len(ins) == 3 else "0.0f"
    body = [f"rn_gemv_wq(xr, {wq}, {sk}, {k_in}, {n_out}, yr);"]  # simd.py: SIMD, same bits
    y = linear_rows(em, x, shape, (n_out, k_in), init, body)
    out = plan.params(node.outputs[0])
    return y if out is None else quantize32(em, y, out)
