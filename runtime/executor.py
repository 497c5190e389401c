"""Runs a Graph with the numpy ops: the reference every other backend is tested against."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from rnnedge.errors import GraphError
from rnnedge.runtime.graph import Graph, check_shape
from rnnedge.runtime.ops import OPS


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

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds every graph input by name; returns every graph output by name."""
        values: dict[str, np.ndarray] = dict(self.graph.constants)
        values.update(feeds)
        for fn, ins, out, attrs in self._steps:
            try:
                values[out] = fn(*(values[i] for i in ins), **attrs)
            except (ValueError, TypeError, IndexError) as e:
                raise GraphError(f"op producing {out!r} failed: {e}") from e
        return {name: values[name] for name in self._output_names}


def infer_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor, found by running the graph once on zeros (shapes are static)."""
    values: dict[str, np.ndarray] = dict(graph.constants)
    for t in graph.inputs:
        check_shape(t.shape, what=f"input {t.name!r}")
        values[t.name] = np.zeros(t.shape, np.float32)
    with np.errstate(all="ignore"):  # zeros may divide by zero; only shapes matter here
        for node in graph.nodes:
            fn = OPS[node.op].fn
            try:
                values[node.outputs[0]] = fn(*(values[i] for i in node.inputs), **node.attrs)
            except (ValueError, TypeError, IndexError) as e:
                raise GraphError(f"op {node.op!r} producing {node.outputs[0]!r}: {e}") from e
    return {name: v.shape for name, v in values.items()}
