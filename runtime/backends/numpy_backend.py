"""The numpy backend: the reference executor of the Graph itself."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError, GraphError
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.executor import Executor


class NumpyBackend:
    name = "numpy"

    def __init__(self, bundle: Bundle, precision: str) -> None:
        if precision not in ("float", "int8-dynamic"):
            raise BackendError(f"numpy backend: precision {precision!r} is not available")
        try:
            if precision == "int8-dynamic":  # the integer kernels' arithmetic, simulated
                from rnnedge.runtime.int8_dynamic import Int8DynamicExecutor
                from rnnedge.runtime.quant_plan import read_plan

                plan = read_plan(bundle.files, str(bundle.path))
                self._executor = Int8DynamicExecutor(bundle.graph, plan)
            else:
                self._executor = Executor(bundle.graph)
        except GraphError as e:
            raise BackendError(f"{bundle.path}/graph.json: {e}") from e
        self._inputs = [t.name for t in bundle.graph.inputs]
        self._outputs = [t.name for t in bundle.graph.outputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        out = self._executor.run(dict(zip(self._inputs, feeds)))
        return [out[n] for n in self._outputs]
