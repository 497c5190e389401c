"""Runners: the per-stream hot path. A runner owns its state and steps it in place.

One runner serves one Stream, or one Streams group (n streams stacked along the batch axes
into one call). Each backend's runner does the least work per step:
  litert       its own interpreter (an interpreter is not thread-safe; a stream is), inputs set
               with set_tensor, outputs read with get_tensor: the fastest pattern measured
               from Python (views through Interpreter.tensor() were slower);
  onnxruntime  the shared session (its run is thread-safe) through two IOBindings whose state
               buffers swap roles every step: no feed dict, no allocation, state never copied
               (11.6 vs 15.8 us per step for session.run in ../shared/notes/measurements.md);
  numpy        the shared executor, state held as arrays.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import TensorSpec


class Runner(Protocol):
    def step(self, x: np.ndarray) -> list[np.ndarray]:
        """One step: returns the data outputs (arrays the caller owns), keeps the new state."""

    def get_state(self) -> list[np.ndarray]:
        """Copies of the current state, in graph.states order."""

    def set_state(self, states: list[np.ndarray]) -> None:
        """Replace the state (arrays already checked, batch-shaped)."""


def batch_shape(spec: TensorSpec, streams: int) -> tuple[int, ...]:
    """The shape of `spec` for `streams` streams stacked along its batch axis."""
    if streams == 1:
        return spec.shape
    shape = list(spec.shape)
    shape[spec.batch_axis] *= streams
    return tuple(shape)


def make_runner(backend: object, bundle: Bundle, precision: str, streams: int = 1) -> Runner:
    name = getattr(backend, "name", "")
    if name == "litert":
        return LiteRTRunner(backend, bundle, precision, streams)
    if name == "onnxruntime":
        return OrtRunner(backend, bundle, streams)
    return NumpyRunner(backend, bundle, streams)


class NumpyRunner:
    def __init__(self, backend: object, bundle: Bundle, streams: int) -> None:
        g = bundle.graph
        self._run = backend.run
        self._n_data = len(g.data_outputs)
        self._states = [
            np.zeros(batch_shape(g.spec(s.input), streams), np.float32) for s in g.states
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


class LiteRTRunner:
    def __init__(self, backend: object, bundle: Bundle, precision: str, streams: int) -> None:
        from rnnedge.runtime.backends.litert_backend import _interpreter_class

        g = bundle.graph
        try:
            interp = _interpreter_class()(
                model_content=bundle.model_bytes("tflite", precision), num_threads=1
            )
            if streams != 1:
                for spec, index in zip(g.inputs, backend._in):
                    interp.resize_tensor_input(index, batch_shape(spec, streams), strict=True)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BackendError(
                f"LiteRT could not prepare {streams} streams of {bundle.path}: {e}"
            ) from e
        self._interp = interp
        self._set, self._get, self._invoke = interp.set_tensor, interp.get_tensor, interp.invoke
        self._x, *self._state_in = backend._in
        n_data = len(g.data_outputs)
        self._data_out, self._state_out = backend._out[:n_data], backend._out[n_data:]
        self._states = [
            np.zeros(batch_shape(g.spec(s.input), streams), np.float32) for s in g.states
        ]

    def step(self, x: np.ndarray) -> list[np.ndarray]:
        set_tensor, get_tensor = self._set, self._get
        set_tensor(self._x, x)
        for index, value in zip(self._state_in, self._states):
            set_tensor(index, value)
        self._invoke()
        self._states = [get_tensor(i) for i in self._state_out]
        return [get_tensor(i) for i in self._data_out]

    def get_state(self) -> list[np.ndarray]:
        return [s.copy() for s in self._states]

    def set_state(self, states: list[np.ndarray]) -> None:
        self._states = [s.copy() for s in states]


class OrtRunner:
    def __init__(self, backend: object, bundle: Bundle, streams: int) -> None:
        from onnxruntime import OrtValue

        g = bundle.graph
        session = backend._session
        buffer = lambda t: np.zeros(batch_shape(t, streams), np.float32)  # noqa: E731
        self._x = buffer(g.inputs[0])
        self._outs = [buffer(t) for t in g.data_outputs]
        specs = [g.spec(s.input) for s in g.states]
        self._sides = [[buffer(t) for t in specs], [buffer(t) for t in specs]]  # A, B
        wrap = OrtValue.ortvalue_from_numpy  # shares the numpy buffer, no copy
        self._bindings = []
        for side in (0, 1):  # binding 0 reads states from A, writes B; binding 1 the reverse
            b = session.io_binding()
            b.bind_ortvalue_input(g.inputs[0].name, wrap(self._x))
            for s, a, o in zip(g.states, self._sides[side], self._sides[1 - side]):
                b.bind_ortvalue_input(s.input, wrap(a))
                b.bind_ortvalue_output(s.output, wrap(o))
            for t, buf in zip(g.data_outputs, self._outs):
                b.bind_ortvalue_output(t.name, wrap(buf))
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
