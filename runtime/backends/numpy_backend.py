"""The numpy backend: the reference executor of the Graph itself, and its runner (the shared
executor, state held as arrays)."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError, GraphError
from rnnedge.runtime.backends.runner import batch_shape
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import PRECISIONS
from rnnedge.runtime.quant.int8 import Int8Executor
from rnnedge.runtime.quant.int8_dynamic import Int8DynamicExecutor
from rnnedge.runtime.quant.plan import read_plan


class NumpyBackend:
    name = "numpy"
    label = "numpy"  # names the backend in errors; there is no model file to name

    def __init__(self, bundle: Bundle, precision: str) -> None:
        if precision not in PRECISIONS:
            raise BackendError(f"numpy backend: precision {precision!r} is not available")
        try:
            self._executor = _executor(bundle, precision)
        except GraphError as e:
            raise BackendError(f"{bundle.path}/graph.json: {e}") from e
        self._graph = bundle.graph
        self._inputs = [t.name for t in bundle.graph.inputs]
        self._outputs = [t.name for t in bundle.graph.outputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        out = self._executor.run(dict(zip(self._inputs, feeds)))
        return [out[n] for n in self._outputs]

    def runner(self, streams: int = 1) -> NumpyRunner:
        return NumpyRunner(self, self._graph, streams)


class NumpyRunner:
    def __init__(self, backend: NumpyBackend, graph: Graph, streams: int) -> None:
        self._run = backend.run
        self._n_data = len(graph.data_outputs)
        self._states = [
            np.zeros(batch_shape(graph.spec(s.input), streams), np.float32) for s in graph.states
        ]

    def step(self, x: np.ndarray) -> list[np.ndarray]:
        outs = self._run([x, *self._states])
        # numpy ops may return views (a reshape of x, one output aliasing another): copies,
        # so neither the caller's arrays nor the returned outputs can alias the state
        self._states = [s.copy() for s in outs[self._n_data :]]
        return [o.copy() for o in outs[: self._n_data]]

    def get_state(self) -> list[np.ndarray]:
        return [s.copy() for s in self._states]

    def set_state(self, states: list[np.ndarray]) -> None:
        self._states = [s.copy() for s in states]


def _executor(bundle: Bundle, precision: str) -> Executor | Int8DynamicExecutor | Int8Executor:
    """float: the Graph's own ops; int8*: the integer kernels' arithmetic, simulated exactly."""
    if precision == "float":
        return Executor(bundle.graph)
    plan = read_plan(bundle.files, str(bundle.path))
    if plan.scheme != precision:
        raise BackendError(
            f"{bundle.path}/quant.json: holds scheme {plan.scheme!r}, not {precision!r}"
        )
    if precision == "int8":
        return Int8Executor(bundle.graph, plan)
    return Int8DynamicExecutor(bundle.graph, plan)
