"""The onnxruntime backend: one InferenceSession on the bundle's ONNX file, one thread."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.bundle import Bundle


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, bundle: Bundle, precision: str, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError(
                "onnxruntime backend: onnxruntime is not installed (pip install 'rnnedge[onnx]')"
            ) from e
        data = bundle.model_bytes("onnx", precision)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors on bad models
            raise BackendError(
                f"onnxruntime could not load {bundle.path} ({precision}): {e}"
            ) from e
        self._inputs = [t.name for t in bundle.graph.inputs]
        if [i.name for i in self._session.get_inputs()] != self._inputs:
            raise BackendError(f"{bundle.path}: ONNX model inputs differ from the manifest")

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(zip(self._inputs, feeds)))
