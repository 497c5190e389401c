"""load(path) -> Model; Model.stream() -> Stream, which owns one recurrent state.

Underneath, a step is explicit: `backend.run([x, *states]) -> [*outputs, *next_states]`.
A Stream keeps the state between calls, checks inputs against the manifest, and resets.

Input policy (checked=True, the default): x must have exactly the manifest's step shape;
float16/float64 arrays are converted to float32 (a documented, lossless-enough conversion),
any other dtype is refused; NaN or Inf is refused, because one NaN would poison the state
for the rest of the stream. checked=False skips all of this, for callers that guarantee it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from rnnedge.errors import InputError
from rnnedge.runtime.backends import Backend, open_backend
from rnnedge.runtime.bundle import Bundle, read_bundle
from rnnedge.runtime.graph import TensorSpec

_FLOATS = (np.float16, np.float32, np.float64)
_F32 = np.dtype(np.float32)


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


def check_array(x: object, spec: TensorSpec, what: str) -> np.ndarray:
    """x as a float32 array of spec's shape, or an InputError that says what is wrong."""
    arr = np.asarray(x)
    if arr.dtype not in _FLOATS:
        raise InputError(f"{what}: dtype {arr.dtype} is not a float type (expected float32)")
    if arr.shape != spec.shape:
        raise InputError(
            f"{what}: shape {list(arr.shape)} does not match the expected {list(spec.shape)}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"{what}: contains NaN or Inf (refused: it would poison the state)")
    return arr


class Stream:
    """One stream: its own state, stepped one time step per call."""

    def __init__(self, model: Model, *, checked: bool = True) -> None:
        graph = model.bundle.graph
        self._run = model.backend.run
        self._x_spec = model.step_input
        self._checked = checked
        self._zeros = np.zeros(self._x_spec.shape, np.float32)
        self._out_specs = graph.data_outputs
        self._n_data = len(self._out_specs)
        self._state_specs = [graph.spec(s.input) for s in graph.states]
        self._initial = [graph.constants[s.init] for s in graph.states]
        self._states: list[np.ndarray] = [s.copy() for s in self._initial]

    def step(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """One time step: x shaped like the export example. Returns the output (a tuple when
        the model has several) and keeps the new state."""
        if self._checked:
            x = self._check_x(x)
        outs = self._run([x, *self._states])
        self._states = outs[self._n_data :]
        return outs[0] if self._n_data == 1 else tuple(outs[: self._n_data])

    def _check_x(self, x: object) -> np.ndarray:
        # The common case (a C-contiguous float32 array of the right shape) is checked in about
        # 1 us: x . 0 is 0 for finite x and NaN as soon as one element is NaN or Inf.
        if (
            type(x) is np.ndarray
            and x.dtype is _F32
            and x.shape == self._x_spec.shape
            and x.flags.c_contiguous
            and np.vdot(x, self._zeros) == 0
        ):
            return x
        return check_array(x, self._x_spec, f"step input {self._x_spec.name!r}")

    def run(self, xs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Many steps: xs is (T, *step shape); returns outputs stacked to (T, *output shape),
        the same numbers as T calls of step()."""
        xs = np.asarray(xs)
        if xs.ndim != len(self._x_spec.shape) + 1:
            dims = ", ".join(map(str, self._x_spec.shape))
            raise InputError(f"run: xs must be (T, {dims}), got {list(xs.shape)}")
        outs = [self.step(x) for x in xs]
        if self._n_data == 1:
            outs = [(o,) for o in outs]
        stacked = tuple(
            np.stack([o[i] for o in outs]) if outs else np.zeros((0, *spec.shape), np.float32)
            for i, spec in enumerate(self._out_specs)
        )
        return stacked[0] if self._n_data == 1 else stacked

    def reset(self) -> None:
        """Back to the initial state from the manifest."""
        self._states = [s.copy() for s in self._initial]

    @property
    def state(self) -> dict[str, np.ndarray]:
        """A copy of the current state, by state input name."""
        return {spec.name: s.copy() for spec, s in zip(self._state_specs, self._states)}

    @state.setter
    def state(self, value: dict[str, np.ndarray]) -> None:
        names = [s.name for s in self._state_specs]
        if not isinstance(value, dict) or sorted(value) != sorted(names):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise InputError(f"state must be a dict with keys {names}, got {got}")
        self._states = [
            check_array(value[s.name], s, f"state {s.name!r}") for s in self._state_specs
        ]
