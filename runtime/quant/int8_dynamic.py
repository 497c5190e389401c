"""The numpy reference of precision "int8-dynamic": the integer arithmetic the kernels do.

A planned `linear` y = x w^T + b runs as onnxruntime's DynamicQuantizeLinear + MatMulInteger
(and TFLite's hybrid FULLY_CONNECTED with asymmetric_quantize_inputs, the same grid shifted
by 128):
  x_scale = (max(0, max x) - min(0, min x)) / 255           one scale per call (per tensor)
  x_zp    = clip(round(-min(0, min x) / x_scale), 0, 255)    uint8, round half to even
  x_q     = clip(round(x / x_scale) + x_zp, 0, 255)
  acc     = (x_q - x_zp) @ w_q^T                             exact, in int32
  y       = acc * (x_scale * w_scale[n]) + b                 float32
This is the spec the ONNX and TFLite int8-dynamic files are tested against. Simulating float
activations times dequantized weights instead would hide the activation rounding (up to half
an 8-bit step of x per element), which is the larger part of the real kernels' error.
(https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html)
"""

from __future__ import annotations

import functools

import numpy as np

from rnnedge.errors import GraphError
from rnnedge.runtime.executor import Executor, Step
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.quant.plan import QuantPlan, quantize_weight

F32 = np.float32


def dynamic_quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32, int]:
    """ONNX DynamicQuantizeLinear: x -> (x_q uint8 as int32, x_scale, x_zp)."""
    lo = min(F32(0), F32(x.min()))
    hi = max(F32(0), F32(x.max()))
    scale = F32((hi - lo) / F32(255))
    if scale == 0:  # x is all zeros: any scale represents it exactly
        return np.zeros(x.shape, np.int32), scale, 0
    zp = int(np.clip(np.rint(-lo / scale), 0, 255))
    q = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.int32)
    return q, scale, zp


def linear_int8_dynamic(
    x: np.ndarray,
    _w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    w_q: np.ndarray,
    w_scale: np.ndarray,
) -> np.ndarray:
    # x [..., K], w_q [N, K] int8, w_scale [N], b [N] -> [..., N]; the float weight _w unused
    q, x_scale, zp = dynamic_quantize(x)
    acc = (q - zp) @ w_q.T.astype(np.int32)  # int32: |acc| <= 255 * 127 * K, exact below K=66k
    y = acc.astype(F32) * (x_scale * w_scale)
    return y if b is None else (y + b).astype(F32, copy=False)


class Int8DynamicExecutor(Executor):
    """The float executor with every planned `linear` replaced by linear_int8_dynamic."""

    def __init__(self, graph: Graph, plan: QuantPlan) -> None:
        super().__init__(graph)
        planned = {t.node: t for t in plan.quantized}
        for i, step in enumerate(self._steps):
            out = step.output
            t = planned.pop(out, None)
            if t is None:
                continue
            if step.op != "linear" or step.inputs[1] != t.tensor or t.tensor not in graph.constants:
                raise GraphError(f"quant.json: {t.tensor!r} is not the constant weight of {out!r}")
            w = graph.constants[t.tensor]
            scale = np.asarray(t.scale, F32)
            if w.ndim != 2 or scale.shape != (w.shape[0],):
                raise GraphError(f"quant.json: {t.tensor!r} scales do not match its rows")
            kernel = functools.partial(
                linear_int8_dynamic, w_q=quantize_weight(w, scale), w_scale=scale
            )
            self._steps[i] = Step(kernel, step.inputs, out, step.attrs, step.op)
        if planned:
            raise GraphError(f"quant.json: plans nodes the graph does not have: {list(planned)}")
