"""Graph -> ONNX: one float32 model (opset 17) that runs one time step.

The model's inputs and outputs are the Graph's, in order, with its names and static shapes;
constants become initializers. The bytes depend only on the Graph: no timestamps, nodes in
graph order, initializers in order of first use. Each op's lowering lives in `onnx_ops.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rnnedge.errors import ExportError, GraphError
from rnnedge.export.onnx_ops import LOWERINGS, where
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.ops import OPS
from rnnedge.runtime.quant_plan import QuantPlan

OPSET = 17
# IR version 8 is the one released with opset 17 (onnx 1.12); every onnxruntime since 1.12
# loads it. https://github.com/onnx/onnx/blob/main/docs/Versioning.md#released-versions
IR_VERSION = 8
PRODUCER = "rnnedge"
GRAPH_NAME = "rnnedge_step"
MAX_PROTO_BYTES = (1 << 31) - 1  # protobuf's hard limit for one message


def emit_onnx(graph: Graph, plan: QuantPlan | None = None) -> bytes:
    """Serialises `graph` as an ONNX model; raises ExportError for anything it cannot lower.
    With a `plan`: scheme "int8-dynamic", planned linears get int8 weights (onnx_int8.py);
    scheme "int8", the whole step runs on integers (onnx_int8_static.py)."""
    shapes = _shapes(graph)
    em = OnnxEmitter(graph, shapes)
    lowerings, finish = LOWERINGS, em.bind_outputs
    if plan is not None and plan.scheme == "int8":
        from rnnedge.export.onnx_int8_static import Int8Static

        static = Int8Static(graph, plan, em)
        static.enter()
        lowerings, finish = static.lowerings(), static.leave
    elif plan is not None:
        from rnnedge.export.onnx_int8 import int8_dynamic_lowerings

        lowerings = int8_dynamic_lowerings(plan)
    for node in graph.nodes:
        _check_node(node)
        lower = lowerings.get(node.op)
        if lower is None:
            raise ExportError(f"{where(node)}: no ONNX lowering for this op")
        em.begin(node)
        try:
            lower(em, node)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ExportError(f"{where(node)}: bad attributes or inputs ({e!r})") from e
    finish()
    model = _model(graph, em)
    if model.ByteSize() > MAX_PROTO_BYTES:
        raise ExportError(f"ONNX model is {model.ByteSize()} bytes, over protobuf's 2 GiB limit")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"emitted ONNX model fails onnx.checker: {e}") from e
    return model.SerializeToString(deterministic=True)


class OnnxEmitter:
    """Collects ONNX nodes and initializers for one emit_onnx call.

    Lowerings pass Graph tensor names; `ref` resolves them (aliases of elided no-op nodes,
    constants turned into initializers on first use, so folded-away weights never appear).
    """

    def __init__(self, graph: Graph, shapes: dict[str, tuple[int, ...]]) -> None:
        self.graph = graph
        self.shapes = shapes
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}
        # the Graph node being lowered: its module path goes into each ONNX node's doc_string,
        # its output name prefixes the names of intermediate tensors
        self.source, self.stem = "", "t"
        self._alias: dict[str, str] = {}
        self._cache: dict[Any, str] = {}
        self._taken: set[str] = set(shapes) | {t.name for t in (*graph.inputs, *graph.outputs)}

    def begin(self, node: Node) -> None:
        self.source, self.stem = node.source, node.outputs[0]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.shapes[name])

    def resolve(self, name: str) -> str:
        """The tensor `name` stands for once elided no-op nodes are looked through."""
        return self._alias.get(name, name)

    def const(self, name: str) -> np.ndarray | None:
        """The value of a Graph constant, or None if `name` is computed at run time."""
        name = self.resolve(name)
        value = self.graph.constants.get(name)
        return None if value is None else _f32(name, value)

    def ref(self, name: str) -> str:
        """The ONNX name of Graph tensor `name`; a constant becomes an initializer on first use."""
        name = self.resolve(name)
        if name in self.graph.constants and name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(
                _f32(name, self.graph.constants[name]), name
            )
        return name

    def fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._taken:
            name, i = f"{hint}_{i}", i + 1
        self._taken.add(name)
        return name

    def add(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        """Appends one ONNX node; returns its output (a fresh name derived from `op_type`)."""
        out = out or self.fresh(f"{self.stem}.{op_type}")
        ins = [self.ref(i) if i else "" for i in inputs]
        node = helper.make_node(op_type, ins, [out], name=out, **attrs)
        if self.source:
            node.doc_string = self.source
        self.nodes.append(node)
        return out

    def alias(self, out: str, src: str) -> None:
        """`out` is `src` unchanged (a no-op node): later readers use `src`, no node is added."""
        self._alias[out] = self.resolve(src)

    def derived(self, key: Any, hint: str, make: Callable[[], np.ndarray]) -> str:
        """An initializer computed by `make()` once per `key` (e.g. a pre-transposed weight)."""
        if key not in self._cache:
            name = self.fresh(hint)
            value = np.ascontiguousarray(make())
            self.initializers[name] = numpy_helper.from_array(value, name)
            self._cache[key] = name
        return self._cache[key]

    def f32(self, value: float, hint: str = "c") -> str:
        v = np.float32(value)
        return self.derived(("f32", v.tobytes()), f"{hint}_{v:g}", lambda: np.array(v))

    def i64(self, values: list[int], hint: str) -> str:
        t = tuple(int(v) for v in values)
        return self.derived(("i64", t), hint, lambda: np.array(t, dtype=np.int64))

    def bind_outputs(self) -> None:
        """A graph output whose node was elided as a no-op is the one place Identity is needed.

        (An output that is a graph input or a constant needs nothing: ONNX allows both.)
        """
        for t in self.graph.outputs:
            src = self.ref(t.name)
            if src != t.name:
                self.source = ""
                self.add("Identity", [src], t.name)


def _shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    for t in (*graph.inputs, *graph.outputs):
        if t.dtype != "float32":
            raise ExportError(
                f"ONNX export: tensor {t.name!r} is {t.dtype}, only float32 is supported"
            )
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


def _check_node(node: Node) -> None:
    op = OPS[node.op]
    if len(node.outputs) != 1 or not op.min_inputs <= len(node.inputs) <= op.max_inputs:
        raise ExportError(
            f"{where(node)}: takes {op.min_inputs}-{op.max_inputs} inputs and one output, "
            f"node has {len(node.inputs)} and {len(node.outputs)}"
        )
    missing = [a for a in op.attrs if a not in node.attrs]
    if missing:
        raise ExportError(f"{where(node)}: lacks attributes {missing}")


def _f32(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise ExportError(f"ONNX export: constant {name!r} has non-numeric dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _model(graph: Graph, em: OnnxEmitter) -> onnx.ModelProto:
    def info(t: Any) -> onnx.ValueInfoProto:
        # a batched graph's batch axis is symbolic, so one session runs any number of streams
        dims = ["batch" if i == t.batch_axis else d for i, d in enumerate(t.shape)]
        return helper.make_tensor_value_info(t.name, TensorProto.FLOAT, dims)

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
