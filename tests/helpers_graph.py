"""Small helpers for tests that build Graphs by hand and feed them seeded random data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph, Node, StatePair, TensorSpec
from rnnedge.runtime.inputs import sample_input

NodeLike = Node | tuple[str, Sequence[str], str, Mapping[str, Any]]


def node(op: str, inputs: Sequence[str], output: str, **attrs: Any) -> Node:
    return Node(op=op, inputs=tuple(inputs), outputs=(output,), attrs=attrs)


def make_graph(
    nodes: Sequence[NodeLike],
    inputs: Mapping[str, tuple[int, ...]],
    outputs: Sequence[str],
    constants: Mapping[str, np.ndarray] | None = None,
    states: Sequence[StatePair] = (),
    dtypes: Mapping[str, str] | None = None,
) -> Graph:
    """A Graph from nodes (Node or (op, inputs, output, attrs)), input shapes and output names.

    Output shapes are inferred by running the graph once, so tests only state input shapes.
    """
    nodes = tuple(n if isinstance(n, Node) else node(n[0], n[1], n[2], **n[3]) for n in nodes)
    dtypes = dtypes or {}
    specs = tuple(
        TensorSpec(name=k, shape=tuple(v), dtype=dtypes.get(k, "float32"))
        for k, v in inputs.items()
    )
    consts = {k: np.asarray(v, np.float32) for k, v in (constants or {}).items()}
    probe = Graph(
        inputs=specs,
        outputs=tuple(TensorSpec(name=o, shape=()) for o in outputs),
        nodes=nodes,
        constants=consts,
    )
    shapes = infer_shapes(probe)
    return Graph(
        inputs=specs,
        outputs=tuple(TensorSpec(name=o, shape=tuple(shapes[o])) for o in outputs),
        nodes=nodes,
        constants=consts,
        states=tuple(states),
    )


def rand(shape: Sequence[int], seed: int = 0, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Seeded uniform float32 data in [low, high)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=tuple(shape)).astype(np.float32)


def random_feeds(
    graph: Graph, seed: int = 0, low: float = -1.0, high: float = 1.0
) -> dict[str, np.ndarray]:
    """Seeded random values for every graph input (state inputs included); an integer input
    gets ids that index its gather's table."""
    return {
        t.name: (
            sample_input(graph, t, np.random.default_rng(seed + i))
            if t.dtype != "float32"
            else rand(t.shape, seed + i, low, high)
        )
        for i, t in enumerate(graph.inputs)
    }
