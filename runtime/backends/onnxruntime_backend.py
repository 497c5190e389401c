"""The onnxruntime backend: one InferenceSession on the bundle's ONNX file, one thread."""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.backends.probe import model_file, probe
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
        self._what = f"onnxruntime ({model_file(bundle, 'onnx', precision)})"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            # names and dims read once, inside the try: a hostile file's names may not even
            # be UTF-8 (UnicodeDecodeError from the bindings)
            in_args = [(i.name, tuple(i.shape)) for i in self._session.get_inputs()]
            out_names = {o.name for o in self._session.get_outputs()}
        except Exception as e:  # onnxruntime raises its own untyped errors on bad models
            raise BackendError(
                f"onnxruntime could not load {bundle.path} ({precision}): {e}"
            ) from e
        self._inputs = [t.name for t in bundle.graph.inputs]
        # outputs fetched BY NAME: a model listing them in another order must not swap them
        self._outputs = [t.name for t in bundle.graph.outputs]
        if [name for name, _ in in_args] != self._inputs:
            raise BackendError(f"{bundle.path}: ONNX model inputs differ from the manifest")
        for (_, shape), spec in zip(in_args, bundle.graph.inputs):
            # a batched graph's batch axis is symbolic ("batch"); every other dim is fixed
            want = tuple("batch" if i == spec.batch_axis else d for i, d in enumerate(spec.shape))
            if shape != want:
                raise BackendError(
                    f"{bundle.path}: {self._what} input {spec.name!r} has shape {list(shape)}, "
                    f"the manifest declares {list(spec.shape)}"
                )
        if not set(self._outputs) <= out_names:
            raise BackendError(f"{bundle.path}: ONNX model outputs differ from the manifest")
        probe(self.run, bundle, self._what)

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session.run(self._outputs, dict(zip(self._inputs, feeds)))
        except Exception as e:  # onnxruntime's errors have no common Python base class
            raise BackendError(f"{self._what} failed to run a step: {e}") from e
