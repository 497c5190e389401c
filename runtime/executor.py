"""Runs a Graph with the numpy ops: the reference every other backend is tested against.

`run_steps` is the one graph loop. The float Executor, the int8 executors
(runtime/quant/int8_dynamic.py, int8.py), calibration (every intermediate tensor, through
`Executor.tensors`) and shape inference (`infer_shapes`, on zeros) all run a Graph through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from rnnedge.errors import GraphError
from rnnedge.runtime.graph import MAX_ELEMENTS, Graph, check_shape, validate
from rnnedge.runtime.ops import OPS

# What a malformed graph or a bad attr makes numpy raise; ArithmeticError covers a stride of 0
# and integers too large for C, MemoryError an allocation numpy could not make.
OP_ERRORS = (ValueError, TypeError, IndexError, ArithmeticError, MemoryError)
_BROADCASTING = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "layer_norm"}


class Step(NamedTuple):
    """One compiled node: output = fn(*inputs, **attrs)."""

    fn: Callable[..., np.ndarray]
    inputs: tuple[str, ...]
    output: str
    attrs: Mapping[str, Any]
    op: str


# called with each step and its arguments before the step runs (may raise GraphError)
Guard = Callable[[Step, list[np.ndarray]], None]


def compile_steps(graph: Graph) -> list[Step]:
    """The float steps of `graph`: each node's op from ops.py."""
    return [Step(OPS[n.op].fn, n.inputs, n.outputs[0], dict(n.attrs), n.op) for n in graph.nodes]


def run_steps(
    steps: Sequence[Step], values: dict[str, np.ndarray], guard: Guard | None = None
) -> dict[str, np.ndarray]:
    """The graph loop: runs every step in order on `values` (tensor name -> array, holding
    the constants and inputs), adds each output to it and returns it."""
    for step in steps:
        fn, ins, out, attrs, op = step
        args = [values[i] for i in ins]
        try:
            if guard is not None:
                guard(step, args)
            values[out] = fn(*args, **attrs)
        except OP_ERRORS as e:
            raise GraphError(f"op {op!r} producing {out!r}: {e}") from e
    return values


class Executor:
    """Compiles a Graph once into steps (op, input names, output name) and runs them."""

    def __init__(self, graph: Graph) -> None:
        validate(graph)
        self.graph = graph
        self._steps = compile_steps(graph)
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
        values = self.tensors(feeds)
        return {name: values[name] for name in self._output_names}

    def tensors(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One step; every tensor's value: the constants, the feeds and each node's output."""
        values: dict[str, np.ndarray] = dict(self.graph.constants)
        values.update(feeds)
        return run_steps(self._steps, values)


def infer_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor, found by running the graph once on zeros (shapes are static).
    Each op's output size is bounded from its input shapes and attrs BEFORE it runs, so a
    hostile graph (an outer product of two long vectors, a pad of 10^9) is refused, not
    allocated."""
    values: dict[str, np.ndarray] = dict(graph.constants)
    for t in graph.inputs:
        check_shape(t.shape, what=f"input {t.name!r}")
        values[t.name] = np.zeros(t.shape, t.dtype)  # an int input holds ids: valid at 0
    with np.errstate(all="ignore"):  # zeros may divide by zero; only shapes matter here
        run_steps(compile_steps(graph), values, _refuse_large)
    return {name: np.shape(v) for name, v in values.items()}


def _refuse_large(step: Step, args: list[np.ndarray]) -> None:
    size = _output_bound(step.op, [np.shape(v) for v in args], step.attrs)
    if size > MAX_ELEMENTS:
        raise GraphError(
            f"op {step.op!r} producing {step.output!r}: would allocate {size} elements "
            f"({MAX_ELEMENTS=})"
        )


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
    if op == "matmul":  # [..., M, K] @ [..., K, N] -> [..., M, N], batch dims broadcast
        a, b = shapes[0], shapes[1]
        if len(a) < 2 or len(b) < 2:
            return sum(sizes)
        batch = np.broadcast_shapes(a[:-2], b[:-2])
        return math.prod(batch) * a[-2] * b[-1] + sum(sizes)
    if op == "gather":  # one row of the table per index
        return math.prod(shapes[1]) * math.prod(shapes[0][1:])
    if op == "pad":
        return math.prod(d + int(a) + int(b) for d, (a, b) in zip(shapes[0], attrs["pads"]))
    if op == "concat":
        return sum(sizes)
    return max(sizes, default=0)  # the rest never produce more than their largest input
