"""ONNX lowering of a planned `linear` at precision "int8-dynamic"
(see runtime/quant/int8_dynamic.py).

  DynamicQuantizeLinear(x) -> x_q uint8, x_scale, x_zp     (once per distinct x)
  MatMulInteger(x_q, W_q int8 [K, N], x_zp, w_zp int8 zeros [N]) -> int32
  Cast float -> Mul(x_scale * w_scale[N]) -> Add bias
is the subgraph onnxruntime's own quantize_dynamic writes, which its optimizer fuses into
DynamicQuantizeMatMul / MatMulIntegerToFloat (integer kernels). The weights are stored as
int8 initializers. https://onnx.ai/onnx/operators/onnx__MatMulInteger.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto, helper

from rnnedge.export.onnx.float_ops import LOWERINGS, Lowering, unsupported
from rnnedge.runtime.graph import Node
from rnnedge.runtime.quant.plan import QuantPlan, quantize_weight

if TYPE_CHECKING:
    from rnnedge.export.onnx.emitter import OnnxEmitter


def int8_dynamic_lowerings(plan: QuantPlan) -> dict[str, Lowering]:
    """LOWERINGS with `linear` quantized where the plan says so (one table per emit call)."""
    quantized: dict[str, tuple[str, str, str]] = {}  # x -> its DynamicQuantizeLinear outputs

    def linear(em: OnnxEmitter, node: Node) -> None:
        t = plan.weight(node.outputs[0])
        if t is None:
            LOWERINGS["linear"](em, node)
            return
        x, w, *bias = node.inputs
        value = em.const(w)
        if value is None or value.ndim != 2 or len(t.scale) != value.shape[0]:
            raise unsupported(node, f"quant.json does not fit weight {w!r}")
        scale = np.asarray(t.scale, np.float32)
        n = value.shape[0]
        w_q = em.derived(("int8", w), f"{w}.int8", lambda: quantize_weight(value, scale).T)
        w_zp = em.derived(("int8 zeros", n), f"zeros{n}.int8", lambda: np.zeros(n, np.int8))
        w_scale = em.derived(("scale", w), f"{w}.scale", lambda: scale)
        key = em.resolve(x)
        if key not in quantized:
            quantized[key] = _dynamic_quantize(em, x)
        x_q, x_scale, x_zp = quantized[key]
        acc = em.add("MatMulInteger", [x_q, w_q, x_zp, w_zp])
        y = em.add("Cast", [acc], to=TensorProto.FLOAT)
        s = em.add("Mul", [x_scale, w_scale])
        out = node.outputs[0]
        y = em.add("Mul", [y, s], None if bias else out)
        if bias:
            em.add("Add", [y, bias[0]], out)

    return {**LOWERINGS, "linear": linear}


def _dynamic_quantize(em: OnnxEmitter, x: str) -> tuple[str, str, str]:
    # three outputs, so the node is built here rather than through em.add (one output)
    stem = f"{em.resolve(x)}.dq"
    outs = [em.fresh(f"{stem}.q"), em.fresh(f"{stem}.scale"), em.fresh(f"{stem}.zp")]
    node = helper.make_node("DynamicQuantizeLinear", [em.ref(x)], outs, name=em.fresh(stem))
    em.nodes.append(node)
    return outs[0], outs[1], outs[2]
