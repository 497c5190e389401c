"""Graph -> ONNX: one float32 model (opset 17) that runs one time step.

The model's inputs and outputs are the Graph's, in order, with its names and static shapes;
constants become initializers. The bytes depend only on the Graph: no timestamps, nodes in
graph order, initializers in order of first use. Each op's lowering lives in `float_ops.py`.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx import TensorProto, helper

from rnnedge.errors import ExportError, GraphError
from rnnedge.export.onnx.emitter import OnnxEmitter
from rnnedge.export.onnx.float_ops import LOWERINGS, where
from rnnedge.export.onnx.int8 import Int8Lowering
from rnnedge.export.onnx.int8_dynamic import int8_dynamic_lowerings
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph, validate
from rnnedge.runtime.quant.plan import QuantPlan

OPSET = 17
# IR version 8 is the one released with opset 17 (onnx 1.12); every onnxruntime since 1.12
# loads it. https://github.com/onnx/onnx/blob/main/docs/Versioning.md#released-versions
IR_VERSION = 8
PRODUCER = "rnnedge"
GRAPH_NAME = "rnnedge_step"
MAX_PROTO_BYTES = (1 << 31) - 1  # protobuf's hard limit for one message
# the Graph's tensor dtypes (runtime/graph.py DTYPES): integers are an embedding's token ids
ONNX_DTYPES = {"float32": TensorProto.FLOAT, "int32": TensorProto.INT32, "int64": TensorProto.INT64}


def emit_onnx(graph: Graph, plan: QuantPlan | None = None) -> bytes:
    """Serialises `graph` as an ONNX model; raises ExportError for anything it cannot lower.
    With a `plan`: scheme "int8-dynamic", planned linears get int8 weights (int8_dynamic.py);
    scheme "int8", the whole step runs on integers (int8.py)."""
    try:
        validate(graph)
    except GraphError as e:
        raise ExportError(f"ONNX export: {e}") from e
    shapes = _shapes(graph)
    em = OnnxEmitter(graph, shapes, compact=plan is not None and plan.scheme == "int8")
    # every precision is: enter (quantize the inputs), one lowering per node, leave
    enter, lowerings, leave = (lambda: None), LOWERINGS, em.bind_outputs
    if plan is not None and plan.scheme == "int8":
        int8 = Int8Lowering(graph, plan, em)
        enter, lowerings, leave = int8.enter, int8.lowerings(), int8.leave
    elif plan is not None:
        lowerings = int8_dynamic_lowerings(plan)
    enter()
    for node in graph.nodes:
        lower = lowerings.get(node.op)
        if lower is None:
            raise ExportError(f"{where(node)}: no ONNX lowering for this op")
        em.begin(node)
        try:
            lower(em, node)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ExportError(f"{where(node)}: bad attributes or inputs ({e!r})") from e
    leave()
    model = _model(graph, em)
    if model.ByteSize() > MAX_PROTO_BYTES:
        raise ExportError(f"ONNX model is {model.ByteSize()} bytes, over protobuf's 2 GiB limit")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"emitted ONNX model fails onnx.checker: {e}") from e
    return model.SerializeToString(deterministic=True)


def _shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    try:
        shapes = infer_shapes(graph)
    except GraphError as e:
        raise ExportError(f"ONNX export: cannot infer shapes: {e}") from e
    names = [t.name for t in graph.outputs]
    if len(set(names)) != len(names):
        raise ExportError(f"ONNX export: graph outputs {names} repeat a name")
    for t in graph.outputs:
        if tuple(shapes[t.name]) != tuple(t.shape):
            raise ExportError(
                f"ONNX export: output {t.name!r} is declared {list(t.shape)} "
                f"but computes {list(shapes[t.name])}"
            )
    return shapes


def _model(graph: Graph, em: OnnxEmitter) -> onnx.ModelProto:
    def info(t: Any) -> onnx.ValueInfoProto:
        # a batched graph's batch axis is symbolic, so one session runs any number of streams
        dims = ["batch" if i == t.batch_axis else d for i, d in enumerate(t.shape)]
        return helper.make_tensor_value_info(t.name, ONNX_DTYPES[t.dtype], dims)

    g = helper.make_graph(
        em.nodes,
        GRAPH_NAME,
        [info(t) for t in graph.inputs],
        [info(t) for t in graph.outputs],
        initializer=list(em.initializers.values()),
    )
    return helper.make_model(
        g,
        producer_name=PRODUCER,
        ir_version=IR_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)]
        + [helper.make_opsetid(d, 1) for d in sorted({n.domain for n in em.nodes} - {""})],
    )
