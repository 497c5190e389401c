"""Runs a Graph with the numpy ops: the reference every other backend is tested against."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rnnedge.errors import GraphError
from rnnedge.runtime.graph import MAX_ELEMENTS, Graph, check_shape
from rnnedge.runtime.ops import OPS

# What a malformed graph or a bad attr makes numpy raise; ArithmeticError covers a stride of 0
# and integers too large for C, MemoryError an allocation numpy could not make.
OP_ERRORS = (ValueError, TypeError, IndexError, ArithmeticError, MemoryError)
_BROADCASTING = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "layer_norm"}


class Executor:
    """Compiles a Graph once into a list of (op, input names, output name) and runs it."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._steps: list[tuple[Callable[..., np.ndarray], tuple[str, ...], str, dict]] = []
        for node in graph.nodes:
            op = OPS[node.op]
            if not op.min_inputs <= len(node.inputs) <= op.max_inputs or len(node.outputs) != 1:
                raise GraphError(
                    f"op {node.op!r} takes {op.min_inputs}-{op.max_inputs} inputs and one output, "
                    f"node has {len(node.inputs)} inputs, {len(node.outputs)} outputs"
                )
            missing = [a for a in op.attrs if a not in node.attrs]
            if missing:
                raise GraphError(f"op {node.op!r} (node {node.outputs[0]!r}) lacks attrs {missing}")
            self._steps.append((op.fn, node.inputs, node.outputs[0], dict(node.attrs)))
        self._output_names = tuple(t.name for t in graph.outputs)
        # one step on zeros now, so a graph that cannot run (or claims other output shapes
        # than it computes) is refused at load, never at the first real step
        shapes = infer_shapes(graph)
        for t in graph.outputs:
            if shapes[t.name] != t.shape:
                raise GraphError(
                    f"graph output {t.name!r} is declared {list(t.shape)} "
                    f"but computes {list(shapes[t.name])}"
                )

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds every graph input by name; returns every graph output by name."""
        values: dict[str, np.ndarray] = dict(self.graph.constants)
        values.update(feeds)
        for fn, ins, out, attrs in self._steps:
            try:
                values[out] = fn(*(values[i] for i in ins), **attrs)
            except OP_ERRORS as e:
                raise GraphError(f"op producing {out!r} failed: {e}") from e
        return {name: values[name] for name in self._output_names}


def infer_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor, found by running the graph once on zeros (shapes are static).
    Each op's output size is bounded from its input shapes and attrs BEFORE it runs, so a
    hostile graph (an outer product of two long vectors, a pad of 10^9) is refused, not
    allocated."""
    values: dict[str, np.ndarray] = dict(graph.constants)
    for t in graph.inputs:
        check_shape(t.shape, what=f"input {t.name!r}")
        values[t.name] = np.zeros(t.shape, np.float32)
    with np.errstate(all="ignore"):  # zeros may divide by zero; only shapes matter here
        for node in graph.nodes:
            fn = OPS[node.op].fn
            ins = [values[i] for i in node.inputs]
            where = f"op {node.op!r} producing {node.outputs[0]!r}"
            try:
                size = _output_bound(node.op, [np.shape(v) for v in ins], node.attrs)
                if size > MAX_ELEMENTS:
                    raise GraphError(f"{where}: would allocate {size} elements ({MAX_ELEMENTS=})")
                values[node.outputs[0]] = np.asarray(fn(*ins, **node.attrs))
            except OP_ERRORS as e:
                raise GraphError(f"{where}: {e}") from e
    return {name: v.shape for name, v in values.items()}


def _output_bound(op: str, shapes: list[tuple[int, ...]], attrs: Mapping[str, Any]) -> int:
    """An upper bound on the elements an op allocates (output and temporaries); raises
    ValueError/TypeError on shapes or attrs the op could not take anyway."""
    sizes = [math.prod(s) for s in shapes]
    if op in _BROADCASTING:
        return math.prod(np.broadcast_shapes(*shapes))
    if op == "expand":
        return math.prod(np.broadcast_shapes(shapes[0], tuple(attrs["shape"])))
    if op == "linear":  # x [..., K] @ w.T [K, N] -> [..., N], plus the bias broadcast
        return math.prod(shapes[0][:-1]) * shapes[1][0] + sum(sizes)
    if op == "conv1d":  # the [N, C, L + 2 pad, K] window gather dominates
        (n, c, length), k = shapes[0], shapes[1][-1]
        return n * c * (length + 2 * int(attrs["padding"])) * k * 2 + sum(sizes)
    if op == "pad":
        return math.prod(d + int(a) + int(b) for d, (a, b) in zip(shapes[0], attrs["pads"]))
    if op == "concat":
        return sum(sizes)
    return max(sizes, default=0)  # the rest never produce more than their largest input
