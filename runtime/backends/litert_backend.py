"""The LiteRT backend: ai-edge-litert's interpreter (tflite-runtime as an optional fallback)."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.bundle import Bundle


def _interpreter_class() -> type:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:  # tflite-runtime is unmaintained and needs numpy < 2; a fallback only
            from tflite_runtime.interpreter import Interpreter
        except ImportError as e:
            raise BackendError(
                "litert backend: ai-edge-litert is not installed (pip install 'rnnedge[tflite]')"
            ) from e
    return Interpreter


class LiteRTBackend:
    name = "litert"

    def __init__(self, bundle: Bundle, precision: str, threads: int = 1) -> None:
        data = bundle.model_bytes("tflite", precision)
        try:
            self._interp = _interpreter_class()(model_content=data, num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BackendError(f"LiteRT could not load {bundle.path} ({precision}): {e}") from e
        by_name = {d["name"]: d["index"] for d in self._interp.get_input_details()}
        by_name |= {d["name"]: d["index"] for d in self._interp.get_output_details()}
        try:
            self._in = [by_name[t.name] for t in bundle.graph.inputs]
            self._out = [by_name[t.name] for t in bundle.graph.outputs]
        except KeyError as e:
            raise BackendError(
                f"{bundle.path}: TFLite model lacks tensor {e} named in the manifest"
            ) from e

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        for index, value in zip(self._in, feeds):
            interp.set_tensor(index, value)
        interp.invoke()
        return [interp.get_tensor(i) for i in self._out]
