"""The numpy backend: the reference executor of the Graph itself."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError, GraphError
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.quant.int8 import Int8Executor
from rnnedge.runtime.quant.int8_dynamic import Int8DynamicExecutor
from rnnedge.runtime.quant.plan import read_plan


class NumpyBackend:
    name = "numpy"

    def __init__(self, bundle: Bundle, precision: str) -> None:
        if precision not in ("float", "int8-dynamic", "int8"):
            raise BackendError(f"numpy backend: precision {precision!r} is not available")
        try:
            self._executor = _executor(bundle, precision)
        except GraphError as e:
            raise BackendError(f"{bundle.path}/graph.json: {e}") from e
        self._inputs = [t.name for t in bundle.graph.inputs]
        self._outputs = [t.name for t in bundle.graph.outputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        out = self._executor.run(dict(zip(self._inputs, feeds)))
        return [out[n] for n in self._outputs]


def _executor(
    bundle: Bundle, precision: str
) -> Executor | Int8DynamicExecutor | Int8Executor:
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
