"""The LiteRT backend: ai-edge-litert's interpreter (tflite-runtime as an optional fallback);
and its runner, LiteRTRunner.

A runner has its own interpreter (an interpreter is not thread-safe; a stream is), inputs set
with set_tensor, outputs read with get_tensor: the fastest pattern measured from Python (views
through Interpreter.tensor() were slower). boards/ reuses LiteRTRunner as the raw LiteRT call
pattern, on our files and on the peers'.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.backends.probe import model_file, probe
from rnnedge.runtime.backends.runner import batch_shape
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import MAX_ELEMENTS


def interpreter_class() -> Callable[..., Any]:
    """A constructor of LiteRT's Interpreter that keeps LiteRT's C++ log lines off stderr
    (see quiet_stderr), or a BackendError saying what to install."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:  # tflite-runtime is unmaintained and needs numpy < 2; a fallback only
            from tflite_runtime.interpreter import Interpreter
        except ImportError as e:
            raise BackendError(
                "litert backend: ai-edge-litert is not installed (pip install 'rnnedge[tflite]')"
            ) from e
        if int(np.__version__.split(".")[0]) >= 2:
            # its wheels are built against numpy 1: with numpy 2 every load fails with
            # "<built-in method CreateWrapperFromBuffer ...> returned a result with an
            # exception set", which names neither cause nor cure
            raise BackendError(
                f"litert backend: tflite-runtime needs numpy < 2 (numpy {np.__version__} is "
                "installed); use ai-edge-litert instead: pip install 'rnnedge[tflite]'"
            ) from None

    def make(**kwargs: Any) -> Any:
        with quiet_stderr():
            return Interpreter(**kwargs)

    return make


_STDERR = threading.Lock()


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null while LiteRT builds an interpreter. LiteRT's C++
    logger writes straight to fd 2 with no setting to quiet it (TF_CPP_MIN_LOG_LEVEL does not
    reach it): "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every command,
    and its own report of a bad file, which the BackendError then says in one line. The lock
    keeps two threads from swapping the descriptor under each other."""
    with _STDERR:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


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
    """The interpreter it probes with is public, with the tensor indices of the Graph's inputs
    and outputs in their order, for the raw-call benches of boards/."""

    name = "litert"

    def __init__(self, bundle: Bundle, precision: str, threads: int = 1) -> None:
        data = bundle.model_bytes("tflite", precision)
        self.label = f"LiteRT ({model_file(bundle, 'tflite', precision)})"
        interpreter = interpreter_class()
        try:
            self.interpreter = interpreter(model_content=data, num_threads=threads)
            _check_sizes(self.interpreter, bundle, self.label)
            with quiet_stderr():  # the XNNPACK delegate is applied (and says so) here
                self.interpreter.allocate_tensors()
            by_name = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
            by_name |= {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        except BackendError:
            raise
        except Exception as e:  # ValueError, RuntimeError, UnicodeDecodeError on a bad file
            raise BackendError(f"LiteRT could not load {bundle.path} ({precision}): {e}") from e
        try:
            self.input_indices = [by_name[t.name] for t in bundle.graph.inputs]
            self.output_indices = [by_name[t.name] for t in bundle.graph.outputs]
        except KeyError as e:
            raise BackendError(
                f"{bundle.path}: TFLite model lacks tensor {e} named in the manifest"
            ) from e
        self._bundle, self._precision = bundle, precision
        probe(self.run, bundle, self.label)

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        interp = self.interpreter
        try:
            for index, value in zip(self.input_indices, feeds):
                interp.set_tensor(index, value)
            interp.invoke()
            return [interp.get_tensor(i) for i in self.output_indices]
        except (ValueError, RuntimeError) as e:  # e.g. a shape or dtype the model does not take
            raise BackendError(f"{self.label} failed to run a step: {e}") from e

    def runner(self, streams: int = 1) -> LiteRTRunner:
        """A runner with its own interpreter, its inputs resized for `streams` streams."""
        bundle, g = self._bundle, self._bundle.graph
        try:
            interp = interpreter_class()(
                model_content=bundle.model_bytes("tflite", self._precision), num_threads=1
            )
            if streams != 1:
                for spec, index in zip(g.inputs, self.input_indices):
                    interp.resize_tensor_input(index, batch_shape(spec, streams), strict=True)
            with quiet_stderr():
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BackendError(
                f"LiteRT could not prepare {streams} streams of {bundle.path}: {e}"
            ) from e
        states = [np.zeros(batch_shape(g.spec(s.input), streams), np.float32) for s in g.states]
        return LiteRTRunner(
            interp, self.input_indices, self.output_indices, states, n_data=len(g.data_outputs)
        )


class LiteRTRunner:
    """Steps `interpreter`: inputs are the tensor indices of [x, *state inputs], outputs of
    [*data outputs, *state outputs] (the first n_data are the data outputs), `states` the state
    to start from (one array per state pair)."""

    def __init__(
        self,
        interpreter,
        inputs: list[int],
        outputs: list[int],
        states: list[np.ndarray],
        *,
        n_data: int,
    ) -> None:
        self._interpreter = interpreter  # kept alive while the runner lives
        self._set = interpreter.set_tensor
        self._get = interpreter.get_tensor
        self._invoke = interpreter.invoke
        self._x, *self._state_in = inputs
        self._data_out, self._state_out = outputs[:n_data], outputs[n_data:]
        self._states = list(states)

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
