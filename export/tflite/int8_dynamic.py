"""TFLite lowering of a planned `linear` at precision "int8-dynamic": the hybrid kernel.

FULLY_CONNECTED with float input and output and an INT8 weight tensor [N, K] carrying
per-channel QuantizationParameters (scale[N], zero_point[N] = 0, quantized_dimension 0).
LiteRT's hybrid kernel quantizes the input at run time; asymmetric_quantize_inputs makes it
asymmetric int8 per row, the grid of ONNX DynamicQuantizeLinear shifted by 128, so TFLite,
onnxruntime and the numpy reference (runtime/quant/int8_dynamic.py) do the same arithmetic.
(tensorflow/lite/kernels/fully_connected.cc, EvalHybrid; schema.fbs FullyConnectedOptions)
"""

from __future__ import annotations

import numpy as np

from rnnedge.export.tflite.emitter import Emitter, fail
from rnnedge.export.tflite.float_ops import LOWERINGS, Lowering, Op
from rnnedge.export.tflite.writer import Options, QuantDef
from rnnedge.runtime.graph import Node
from rnnedge.runtime.quant.plan import QuantPlan, quantize_weight

# FULLY_CONNECTED version 7 is the first with per-channel hybrid weights and asymmetric inputs
# (tensorflow/lite/tools/versioning/op_version.cc); the kernel is chosen by tensor types.
HYBRID_FC_VERSION = 7


def int8_dynamic_lowerings(plan: QuantPlan) -> dict[str, Lowering]:
    def linear(e: Emitter, node: Node) -> None:
        t = plan.weight(node.outputs[0])
        if t is None:
            LOWERINGS["linear"](e, node)
            return
        x, w, *bias = node.inputs
        out = node.outputs[0]
        value = e.constant(w)
        if value is None or value.ndim != 2 or len(t.scale) != value.shape[0]:
            raise fail(node, f"quant.json does not fit weight {w!r}")
        if len(e.shape(x)) == 0:
            raise fail(node, "needs x of rank >= 1")
        scale = np.asarray(t.scale, np.float32)
        quant = QuantDef(tuple(float(s) for s in scale), tuple(t.zero_point), 0)
        w_t = e.const_int8(f"{w}:int8", quantize_weight(value, scale), quant)
        n = value.shape[0]
        fuse_bias = bool(bias) and e.shape(bias[0]) == (n,)
        options = Options(
            "FullyConnectedOptions",
            (("KeepNumDims", len(e.shape(x)) != 2), ("AsymmetricQuantizeInputs", True)),
        )
        b = e.tensor(bias[0]) if fuse_bias else -1
        y = e.tensor(out) if fuse_bias or not bias else e.temp(f"{out}:matmul", e.shape(out))
        e.op(Op.FULLY_CONNECTED, [e.tensor(x), w_t, b], [y], options, version=HYBRID_FC_VERSION)
        if bias and not fuse_bias:
            e.op(Op.ADD, [y, e.tensor(bias[0])], [e.tensor(out)])

    return {**LOWERINGS, "linear": linear}
