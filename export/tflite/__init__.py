"""emit_tflite: a Graph -> a float32 TFLite flatbuffer, written with our own code.

No converter is involved: each Graph op is lowered to TFLite builtin operators
(`float_ops.LOWERINGS`; int8_dynamic.py and int8.py at those precisions), collected by an
`Emitter` (emitter.py) into a `Program`, and serialised with the flatc-generated `tflite`
schema bindings (writer.py). The model has one subgraph whose inputs and outputs are the
Graph's, in the same order and under the same tensor names, and a "serving_default"
SignatureDef keyed by those names.
"""

from __future__ import annotations

from collections.abc import Mapping

from rnnedge.errors import ExportError, GraphError
from rnnedge.export.tflite.emitter import Emitter, fail
from rnnedge.export.tflite.float_ops import LOWERINGS
from rnnedge.export.tflite.int8 import Int8Lowering, with_versions
from rnnedge.export.tflite.int8_dynamic import int8_dynamic_lowerings
from rnnedge.export.tflite.writer import write_program
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph, validate
from rnnedge.runtime.quant.plan import QuantPlan

# XNNPACK (LiteRT's default CPU delegate) handles at most 6 dims and fails at prepare time,
# rather than declining the node, for some ops (MEAN, SUM, CONCATENATION, FULLY_CONNECTED).
MAX_RANK = 6


def emit_tflite(graph: Graph, plan: QuantPlan | None = None) -> bytes:
    """The TFLite flatbuffer (schema version 3) computing one step of `graph` in float32;
    with an "int8-dynamic" `plan`, planned linears get int8 weights (int8_dynamic.py); with an
    "int8" plan, the full-integer model (int8.py): the same float32 inputs and
    outputs, integers inside."""
    try:
        validate(graph)
    except GraphError as e:
        raise ExportError(f"TFLite export: {e}") from e
    try:
        shapes = infer_shapes(graph)
    except GraphError as e:
        raise ExportError(f"TFLite export: cannot infer tensor shapes: {e}") from e
    _check_boundaries(graph)
    _check_nodes(graph, shapes)
    emitter = Emitter(graph, shapes)
    for t in graph.inputs:  # inputs first, so their tensor indices follow the Graph's order
        emitter.tensor(t.name)
    # every precision is: enter (quantize the inputs), one lowering per node, leave
    enter, lowerings, leave = (lambda: None), LOWERINGS, (lambda: None)
    if plan is not None and plan.scheme == "int8":
        int8 = Int8Lowering(graph, plan, emitter)
        enter, lowerings, leave = int8.enter, int8.lowerings(), int8.leave
    elif plan is not None:
        lowerings = int8_dynamic_lowerings(plan)
    enter()
    for node in graph.nodes:
        lowerings[node.op](emitter, node)
    leave()
    program = emitter.program([t.name for t in graph.inputs], [t.name for t in graph.outputs])
    if plan is not None and plan.scheme == "int8":
        program = with_versions(program)  # int8 kernels need newer operator versions
    return write_program(program)


def _check_nodes(graph: Graph, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """What TFLite adds to graph.validate: a lowering for every op, XNNPACK's rank limit."""
    for node in graph.nodes:
        if node.op not in LOWERINGS:
            raise fail(node, "has no TFLite lowering")
        for name in (*node.inputs, *node.outputs):
            if len(shapes[name]) > MAX_RANK:
                raise fail(node, f"tensor {name!r} has rank {len(shapes[name])}; TFLite export "
                           f"supports rank <= {MAX_RANK} (XNNPACK's limit)")  # fmt: skip


def _check_boundaries(graph: Graph) -> None:
    # SignatureDef keys must be unique. (A pass-through or constant output is fine: the
    # interpreter returns the input or the constant buffer.)
    names = [t.name for t in graph.outputs]
    for name in names:
        if names.count(name) > 1:
            raise ExportError(f"TFLite export: output {name!r} is listed twice")
