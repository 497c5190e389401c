"""The ONNX emitter: collects the nodes and initializers of one emit_onnx call; the lowerings
(float_ops.py, int8_dynamic.py, int8.py) append through it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rnnedge.errors import ExportError
from rnnedge.runtime.graph import Graph, Node


class OnnxEmitter:
    """Collects ONNX nodes and initializers for one emit_onnx call.

    Lowerings pass Graph tensor names; `ref` resolves them (aliases of elided no-op nodes,
    constants turned into initializers on first use, so folded-away weights never appear).
    """

    def __init__(
        self, graph: Graph, shapes: dict[str, tuple[int, ...]], *, compact: bool = False
    ) -> None:
        self.graph = graph
        # `compact` (the full int8 file, issue 16): derived initializers (int8 weights, scales,
        # biases) are named short, as intermediates are (see `add`), and no node carries a
        # doc_string (graph.json keeps every node's source); a float file keeps "w.T" and the
        # module path of each Graph node
        self.compact = compact
        self.shapes = shapes
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}
        # the Graph node being lowered: its module path goes into the doc_string of the ONNX
        # node that writes its output
        self.source = ""
        self._alias: dict[str, str] = {}
        self._cache: dict[Any, str] = {}
        self._shorts = 0  # short names made (short_name)
        self._taken: set[str] = set(shapes) | {t.name for t in (*graph.inputs, *graph.outputs)}

    def begin(self, node: Node) -> None:
        self.source = node.source

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
        """Appends one ONNX node; returns its output (a fresh short name unless `out`)."""
        # An intermediate is named "_" and a number (issue 16: every name is stored at its
        # producer and every reader; "rnn.l0.gates_x.MatMulInteger" and its kin were 7% of a
        # GRU 64's int8 file). The node that writes a Graph tensor keeps the Graph's name and
        # carries the module path as its doc_string, once per Graph node, not per ONNX node.
        named = out is not None
        out = out or self.short_name()
        ins = [self.ref(i) if i else "" for i in inputs]
        # no node name: it would repeat the output's name (~30 bytes a node, 5% of a GRU 64's
        # int8 file); onnxruntime names unnamed nodes itself for its profiler
        node = helper.make_node(op_type, ins, [out], **attrs)
        if self.source and named and not self.compact:
            node.doc_string = self.source
        self.nodes.append(node)
        return out

    def short_name(self) -> str:
        """A fresh name of "_" and a base-36 number."""
        self._shorts += 1
        return self.fresh("_" + np.base_repr(self._shorts - 1, 36).lower())

    def alias(self, out: str, src: str) -> None:
        """`out` is `src` unchanged (a no-op node): later readers use `src`, no node is added."""
        self._alias[out] = self.resolve(src)

    def derived(self, key: Any, hint: str, make: Callable[[], np.ndarray]) -> str:
        """An initializer computed by `make()` once per `key` (e.g. a pre-transposed weight)."""
        if key not in self._cache:
            name = self.short_name() if self.compact else self.fresh(hint)
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


def _f32(name: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise ExportError(f"ONNX export: constant {name!r} has non-numeric dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)
