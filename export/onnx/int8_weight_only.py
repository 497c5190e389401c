"""ONNX lowering of weight-only int8 (quantize/weight_only.py): a linear whose activations the
plan keeps float, with its weight int8 per output channel.

    w = Cast(w_q^T int8 [K, N] -> float32) * Cast(s float16 [N] -> float32)
    y = MatMul(x, w) (+ Add b)

float in, float out; the output QuantizeLinear'd when the plan keeps it int8. The weight nodes
read initializers only, so onnxruntime folds them into one float32 [K, N] initializer when the
session loads (w_q * s, exact in float32): the step is the float MatMul on the spec's weight.
Chosen over DequantizeLinear(w_q, s, axis=1) -> MatMul, which onnxruntime 1.32 fuses into a
kernel that quantizes x too: 0.15 off the exact float product at K=256, N=1024 (outputs of
magnitude ~10), measured 2026-12-07; Cast + Mul gave the float product bit for bit, at the
float MatMul's speed (57.9 vs 72.8 us median of 15 interleaved runs, loaded machine: noise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
from onnx import TensorProto

from rnnedge.export.onnx.float_ops import unsupported
from rnnedge.runtime.graph import Node
from rnnedge.runtime.quant.plan import QParams, QuantPlan, quantize_weight

if TYPE_CHECKING:
    from rnnedge.export.onnx.emitter import OnnxEmitter


class Int8Lowering(Protocol):
    """What this lowering reads of int8.py's Int8Lowering (which calls it)."""

    em: OnnxEmitter
    plan: QuantPlan
    params: dict[str, QParams | None]

    def weight_scale(self, w: str, scale: np.ndarray) -> str: ...
    def dequantized(self, name: str) -> str: ...
    def qdq(self, op: str, x: str, p: QParams, out: str | None = None) -> str: ...


F32 = np.float32


def weight_only_linear(low: Int8Lowering, node: Node, out: str) -> None:
    """As the spec's Int8Executor._weight_only: dequantized inputs, the float product with the
    dequantized weight, the output quantized if the plan keeps it int8."""
    em = low.em
    x, w, *bias = node.inputs
    t, value = low.plan.weight(node.outputs[0]), em.const(w)
    if t is None or t.tensor != w or value is None or value.ndim != 2 or len(t.scale) != len(value):
        raise unsupported(node, f"quant.json has no int8 weight for {w!r}")
    w_q = em.derived(
        ("int8", w), f"{w}.int8", lambda: quantize_weight(value, t.scale).T
    )  # as int8.py
    scale = low.weight_scale(w, np.asarray(t.scale, F32))
    w_f = em.add("Mul", [em.add("Cast", [w_q], to=TensorProto.FLOAT), scale])
    yp = low.params[node.outputs[0]]
    y = out if yp is None else em.fresh(f"{node.outputs[0]}.f")
    xf = low.dequantized(x)
    if bias:
        em.add("Add", [em.add("MatMul", [xf, w_f]), low.dequantized(bias[0])], y)
    else:
        em.add("MatMul", [xf, w_f], y)
    if yp is not None:
        em.shapes[y] = em.shape(node.outputs[0])
        low.qdq("QuantizeLinear", y, yp, out)
