"""The onnxruntime backend: one InferenceSession on the bundle's ONNX file, one thread; and
its runner, OrtRunner.

OrtRunner steps the shared session (its run is thread-safe) through two IOBindings whose
state buffers swap roles every step: no feed dict, no allocation, state never copied (11.6 vs
15.8 us per step for session.run in ../shared/notes/measurements.md). boards/ reuses it as the
fastest raw onnxruntime call pattern, on our files and on the peers'.
"""

from __future__ import annotations

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.backends.ort_numerics import integer_session_kwargs
from rnnedge.runtime.backends.probe import model_file, probe
from rnnedge.runtime.backends.runner import batch_shape
from rnnedge.runtime.bundle import Bundle

Shape = tuple[int, ...]


def onnxruntime_module():
    """The onnxruntime package, or a BackendError saying how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendError(
            "onnxruntime backend: onnxruntime is not installed (pip install 'rnnedge[onnx]')"
        ) from e
    return onnxruntime


def new_session(data: bytes, threads: int = 1, precision: str = "float"):
    """An InferenceSession on the CPU with `threads` intra-op threads and quiet logging; an
    integer `precision` disables the rewrites that change its numerics (ort_numerics.py).
    Raises onnxruntime's own (untyped) errors on a bad model: the caller names the file."""
    ort = onnxruntime_module()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    extra = integer_session_kwargs(opts, precision)
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"], **extra)


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, bundle: Bundle, precision: str, threads: int = 1) -> None:
        onnxruntime_module()  # a missing package is refused before a missing file
        data = bundle.model_bytes("onnx", precision)
        self.label = f"onnxruntime ({model_file(bundle, 'onnx', precision)})"
        try:
            self.session = new_session(data, threads, precision)
            # names and dims read once, inside the try: a hostile file's names may not even
            # be UTF-8 (UnicodeDecodeError from the bindings)
            in_args = [(i.name, tuple(i.shape)) for i in self.session.get_inputs()]
            out_names = {o.name for o in self.session.get_outputs()}
        except Exception as e:  # onnxruntime raises its own untyped errors on bad models
            raise BackendError(
                f"onnxruntime could not load {bundle.path} ({precision}): {e}"
            ) from e
        self._graph = bundle.graph
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
                    f"{bundle.path}: {self.label} input {spec.name!r} has shape {list(shape)}, "
                    f"the manifest declares {list(spec.shape)}"
                )
        if not set(self._outputs) <= out_names:
            raise BackendError(f"{bundle.path}: ONNX model outputs differ from the manifest")
        probe(self.run, bundle, self.label)

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(self._outputs, dict(zip(self._inputs, feeds)))
        except Exception as e:  # onnxruntime's errors have no common Python base class
            raise BackendError(f"{self.label} failed to run a step: {e}") from e

    def runner(self, streams: int = 1) -> OrtRunner:
        """A runner on the shared session, for `streams` streams stacked in one call."""
        g = self._graph
        x = g.inputs[0]
        return OrtRunner(
            self.session,
            x=(x.name, batch_shape(x, streams)),
            outputs=[(t.name, batch_shape(t, streams)) for t in g.data_outputs],
            states=[(s.input, s.output, batch_shape(g.spec(s.input), streams)) for s in g.states],
            x_dtype=x.dtype,
        )


class OrtRunner:
    """Steps `session` with x, the data outputs and the state pairs bound by name: x is
    (name, shape), outputs (name, shape) each, states (input name, output name, shape) each.
    The state starts at zeros."""

    def __init__(
        self,
        session,
        *,
        x: tuple[str, Shape],
        outputs: list[tuple[str, Shape]],
        states: list[tuple[str, str, Shape]],
        x_dtype: str = "float32",
    ) -> None:
        from onnxruntime import OrtValue

        self._x = np.zeros(x[1], x_dtype)  # float32, or an embedding's int32/int64 ids
        self._outs = [np.zeros(shape, np.float32) for _, shape in outputs]
        self._sides = [[np.zeros(s[2], np.float32) for s in states] for _ in range(2)]  # A, B
        wrap = OrtValue.ortvalue_from_numpy  # shares the numpy buffer, no copy
        self._bindings = []
        for side in (0, 1):  # binding 0 reads states from A, writes B; binding 1 the reverse
            b = session.io_binding()
            b.bind_ortvalue_input(x[0], wrap(self._x))
            for (name_in, name_out, _), a, o in zip(
                states, self._sides[side], self._sides[1 - side]
            ):
                b.bind_ortvalue_input(name_in, wrap(a))
                b.bind_ortvalue_output(name_out, wrap(o))
            for (name, _), buf in zip(outputs, self._outs):
                b.bind_ortvalue_output(name, wrap(buf))
            self._bindings.append(b)
        self._run = session.run_with_iobinding
        self._side = 0  # which buffer set holds the current state

    def step(self, x: np.ndarray) -> list[np.ndarray]:
        np.copyto(self._x, x, casting="no")  # unchecked input: refuse, never convert silently
        self._run(self._bindings[self._side])
        self._side ^= 1
        return [o.copy() for o in self._outs]

    def get_state(self) -> list[np.ndarray]:
        return [s.copy() for s in self._sides[self._side]]

    def set_state(self, states: list[np.ndarray]) -> None:
        for buf, s in zip(self._sides[self._side], states):
            np.copyto(buf, s)
