"""The numpy backend: the reference executor of the Graph itself."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.executor import Executor


class NumpyBackend:
    name = "numpy"

    def __init__(self, bundle: Bundle, precision: str) -> None:
        if precision != "float":
            raise BackendError(f"numpy backend: precision {precision!r} is not available")
        self._executor = Executor(bundle.graph)
        self._inputs = [t.name for t in bundle.graph.inputs]
        self._outputs = [t.name for t in bundle.graph.outputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        out = self._executor.run(dict(zip(self._inputs, feeds)))
        return [out[n] for n in self._outputs]
