"""load(path) -> Model; Model.stream() -> Stream; Model.streams(n) -> Streams.

Underneath, a step is explicit: `[x, *states] -> [*outputs, *next_states]`. A Stream owns a
runner (runtime/runners.py) that keeps the state between calls; the Stream checks inputs
against the manifest (see runtime/inputs.py for the policy), reads, writes and resets state.

Threads: a Stream (and a Streams group) has its own runner, so different streams may be
stepped from different threads at once; one stream must not be stepped from two threads at
the same time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rnnedge.errors import BackendError, InputError, RnnedgeError
from rnnedge.runtime.backends import Backend, open_backend
from rnnedge.runtime.bundle import Bundle, read_bundle
from rnnedge.runtime.graph import TensorSpec
from rnnedge.runtime.inputs import check_array, fast_check
from rnnedge.runtime.runners import make_runner

if TYPE_CHECKING:
    from rnnedge.runtime.streams import Streams


def load(
    path: str | os.PathLike,
    backend: str = "auto",
    precision: str = "float",
    *,
    verify: bool = True,
) -> Model:
    """Opens a bundle. backend: "auto" (litert > onnxruntime > numpy), "litert",
    "onnxruntime" or "numpy". verify=False skips the sha256 checks (see read_bundle)."""
    bundle = read_bundle(path, verify=verify)
    return Model(bundle, open_backend(bundle, backend, precision), precision)


@dataclass(frozen=True)
class Model:
    bundle: Bundle
    backend: Backend
    precision: str

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def step_input(self) -> TensorSpec:
        return self.bundle.manifest.step_input

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.bundle.graph.data_outputs)

    def stream(self, *, checked: bool = True) -> Stream:
        return Stream(self, checked=checked)

    def streams(self, n: int, *, checked: bool = True) -> Streams:
        from rnnedge.runtime.streams import Streams

        return Streams(self, n, checked=checked)


class Stream:
    """One stream: its own state, stepped one time step per call."""

    def __init__(self, model: Model, *, checked: bool = True) -> None:
        graph = model.bundle.graph
        self._x_spec = model.step_input
        self._check = fast_check(self._x_spec.shape, f"step input {self._x_spec.name!r}")
        self._checked = checked
        self._out_specs = graph.data_outputs
        self._state_specs = [graph.spec(s.input) for s in graph.states]
        self._initial = [graph.constants[s.init] for s in graph.states]
        self._runner = make_runner(model.backend, model.bundle, model.precision)
        self._runner.set_state(self._initial)
        self._runner_step = self._runner.step
        self._single = len(self._out_specs) == 1
        self._what = getattr(model.backend, "_what", model.backend_name)

    def step(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """One time step: x shaped like the export example. Returns the output (a tuple when
        the model has several) and keeps the new state."""
        try:
            outs = self._runner_step(self._check(x) if self._checked else x)
        except RnnedgeError:
            raise
        except Exception as e:  # unchecked input can reach the interpreter; free when unraised
            raise BackendError(f"{self._what} failed a step: {e}") from e
        return outs[0] if self._single else tuple(outs)

    def run(self, xs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Many steps: xs is (T, *step shape); returns outputs stacked to (T, *output shape),
        the same numbers as T calls of step(). xs is checked once, as a whole."""
        xs = np.asarray(xs)
        if xs.ndim != len(self._x_spec.shape) + 1:
            dims = ", ".join(map(str, self._x_spec.shape))
            raise InputError(f"run: xs must be (T, {dims}), got {list(xs.shape)}")
        if self._checked:
            xs = check_array(xs, (len(xs), *self._x_spec.shape), "run: xs")
        step = self._runner_step
        try:
            outs = [step(x) for x in xs]
        except RnnedgeError:
            raise
        except Exception as e:  # unchecked input can reach the interpreter, as in step()
            raise BackendError(f"{self._what} failed a step: {e}") from e
        stacked = tuple(
            np.stack([o[i] for o in outs]) if outs else np.zeros((0, *spec.shape), np.float32)
            for i, spec in enumerate(self._out_specs)
        )
        return stacked[0] if self._single else stacked

    def reset(self) -> None:
        """Back to the initial state from the manifest."""
        self._runner.set_state(self._initial)

    @property
    def state(self) -> dict[str, np.ndarray]:
        """A copy of the current state, by state input name."""
        return {spec.name: s for spec, s in zip(self._state_specs, self._runner.get_state())}

    @state.setter
    def state(self, value: dict[str, np.ndarray]) -> None:
        self._runner.set_state(check_state(value, self._state_specs, 1))


def check_state(value: object, specs: list[TensorSpec], streams: int) -> list[np.ndarray]:
    """A state dict as checked arrays in graph order (shapes for `streams` stacked streams)."""
    from rnnedge.runtime.runners import batch_shape

    names = [s.name for s in specs]
    if not isinstance(value, dict) or sorted(value) != sorted(names):
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise InputError(f"state must be a dict with keys {names}, got {got}")
    return [check_array(value[s.name], batch_shape(s, streams), f"state {s.name!r}") for s in specs]
