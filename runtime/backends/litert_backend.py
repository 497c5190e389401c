"""The LiteRT backend: ai-edge-litert's interpreter (tflite-runtime as an optional fallback)."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.backends.probe import model_file, probe
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import MAX_ELEMENTS


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


def _check_sizes(interp, bundle: Bundle, what: str) -> None:
    """Before allocate_tensors: the model's I/O shapes must be the manifest's, and no tensor
    may exceed the size limit. A .tflite whose state tensor claims [1, 16777216, 16] made
    LiteRT allocate 5 GB and spend 20 s before failing; this refuses it in microseconds."""
    declared = {t.name: t.shape for t in (*bundle.graph.inputs, *bundle.graph.outputs)}
    total = 0
    for d in interp.get_tensor_details():
        shape = tuple(int(n) for n in d["shape"])
        if d["name"] in declared and shape != declared[d["name"]]:
            raise BackendError(
                f"{bundle.path}: {what} tensor {d['name']!r} has shape {list(shape)}, "
                f"the manifest declares {list(declared[d['name']])}"
            )
        size = 1
        for n in shape:
            size *= max(n, 1)
        total += size
        if size > MAX_ELEMENTS or total > 2 * MAX_ELEMENTS:
            raise BackendError(
                f"{bundle.path}: {what} tensor {d['name']!r} of shape {list(shape)} exceeds "
                f"the size limits ({MAX_ELEMENTS} elements per tensor, {2 * MAX_ELEMENTS} in all)"
            )


class LiteRTBackend:
    name = "litert"

    def __init__(self, bundle: Bundle, precision: str, threads: int = 1) -> None:
        data = bundle.model_bytes("tflite", precision)
        self._what = f"LiteRT ({model_file(bundle, 'tflite', precision)})"
        interpreter = _interpreter_class()
        try:
            self._interp = interpreter(model_content=data, num_threads=threads)
            _check_sizes(self._interp, bundle, self._what)
            self._interp.allocate_tensors()
            by_name = {d["name"]: d["index"] for d in self._interp.get_input_details()}
            by_name |= {d["name"]: d["index"] for d in self._interp.get_output_details()}
        except BackendError:
            raise
        except Exception as e:  # ValueError, RuntimeError, UnicodeDecodeError on a bad file
            raise BackendError(f"LiteRT could not load {bundle.path} ({precision}): {e}") from e
        try:
            self._in = [by_name[t.name] for t in bundle.graph.inputs]
            self._out = [by_name[t.name] for t in bundle.graph.outputs]
        except KeyError as e:
            raise BackendError(
                f"{bundle.path}: TFLite model lacks tensor {e} named in the manifest"
            ) from e
        probe(self.run, bundle, self._what)

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        try:
            for index, value in zip(self._in, feeds):
                interp.set_tensor(index, value)
            interp.invoke()
            return [interp.get_tensor(i) for i in self._out]
        except (ValueError, RuntimeError) as e:  # e.g. a shape or dtype the model does not take
            raise BackendError(f"{self._what} failed to run a step: {e}") from e
