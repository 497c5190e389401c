"""load(path) -> Model; Model.stream() -> Stream; Model.streams(n) -> Streams.

Underneath, a step is explicit: `[x, *states] -> [*outputs, *next_states]`. A Stream owns a
runner (made by its backend, see runtime/backends/runner.py) that keeps the state between
calls; the Stream checks inputs against the manifest (see runtime/inputs.py for the policy),
reads, writes and resets state.

Streams: n independent streams stepped together as ONE batched call. Stream k's rows sit at
slot k along each tensor's batch axis (the order of `ids`). Each call to `step(X)` runs the
backend once for all of them, which costs far less per stream than n separate steps. Streams
can be added, removed, reset and have their state read or restored one at a time; adding or
removing rebuilds the runner at the new batch size (a few ms), so do it between steps, not in
the hot loop.

Threads: a Stream (and a Streams group) has its own runner, so different streams may be
stepped from different threads at once; one stream must not be stepped from two threads at
the same time.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rnnedge.errors import (
    BackendError,
    BackendFallbackWarning,
    InputError,
    RnnedgeError,
    StreamsError,
)
from rnnedge.runtime.backends import Backend, batch_shape, open_noting_fallbacks
from rnnedge.runtime.bundle import Bundle, read_bundle
from rnnedge.runtime.chunk import chunked_run
from rnnedge.runtime.graph import TensorSpec
from rnnedge.runtime.inputs import check_array, step_check
from rnnedge.runtime.offline import OfflineBackend


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
    if bundle.manifest.stages:  # an offline program (docs/time.md): Model.run only
        return Model(bundle, OfflineBackend(bundle, backend, precision), precision)
    chosen, fallbacks = open_noting_fallbacks(bundle, backend, precision)
    if fallbacks:  # said, never silent: the preferred backend could not load this file
        warnings.warn(
            f"{bundle.path}: running on {chosen.name}, because {'; '.join(fallbacks)}",
            BackendFallbackWarning,
            stacklevel=2,
        )
    return Model(bundle, chosen, precision, fallbacks)


@dataclass(frozen=True)
class Model:
    bundle: Bundle
    backend: Backend
    precision: str
    # backend="auto": why each preferred backend failed to load the bundle ("" for none)
    fallbacks: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"<rnnedge.Model {str(self.bundle.path)!r} backend={self.backend_name} "
            f"precision={self.precision} {_signature(self.bundle)}>"
        )

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def step_input(self) -> TensorSpec:
        return self.bundle.manifest.step_input

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.bundle.graph.data_outputs)

    @property
    def offline(self) -> bool:
        """Whether the bundle runs only over whole sequences (run), never as a stream."""
        return bool(self.bundle.manifest.stages)

    def run(self, xs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """A whole sequence from the initial state: xs (T, *step shape) -> outputs stacked to
        (T, *output shape). For an offline bundle, the only way to run it."""
        if self.offline:
            return self.backend.run_sequence(xs)
        return self.stream().run(xs)

    def stream(self, *, checked: bool = True) -> Stream:
        return Stream(self, checked=checked)

    def streams(self, n: int, *, checked: bool = True) -> Streams:
        return Streams(self, n, checked=checked)


class Stream:
    """One stream: its own state, stepped one time step per call."""

    def __init__(self, model: Model, *, checked: bool = True) -> None:
        graph = model.bundle.graph
        self._x_spec = model.step_input
        self._check = step_check(
            graph, self._x_spec, self._x_spec.shape, f"step input {self._x_spec.name!r}"
        )
        self._checked = checked
        self._out_specs = graph.data_outputs
        self._graph = graph
        self._state_specs = [graph.spec(s.input) for s in graph.states]
        self._initial = [graph.constants[s.init] for s in graph.states]
        self._runner = model.backend.runner()
        self._runner.set_state(self._initial)
        self._runner_step = self._runner.step
        # a runner that steps a whole Stream.step in one C call (native with its extension)
        fast = getattr(self._runner, "fast_step", None)
        self._fast = fast(self._check if checked else None) if fast else None
        if self._fast is not None:  # step() is the C call itself: no Python frame around it
            self.step = self._fast  # type: ignore[method-assign]
        self._single = len(self._out_specs) == 1
        self._what = model.backend.label
        self._model = model
        self._chunked = chunked_run(model.bundle, model.backend_name, model.precision)

    def __repr__(self) -> str:
        m = self._model
        return f"<rnnedge.Stream of {str(m.bundle.path)!r} on {m.backend_name}/{m.precision}>"

    def step(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """One time step: x shaped like the export example. Returns the output (a tuple when
        the model has several) and keeps the new state."""
        if self._fast is not None:
            return self._fast(x)
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
            shape = (len(xs), *self._x_spec.shape)
            xs = step_check(self._graph, self._x_spec, shape, "run: xs")(xs)
        step = self._runner_step
        try:
            if self._chunked is not None and len(xs) >= self._chunked.steps:
                stacked = self._chunked.run(self._runner, xs)  # K steps per call (chunk.py)
                return stacked[0] if self._single else stacked
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

    @property
    def chunk(self) -> int:
        """K when run() feeds whole chunks of K steps to the bundle's chunk model; 0 when it
        steps one by one (no chunk models, or the numpy backend)."""
        return 0 if self._chunked is None else self._chunked.steps

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


class Streams:
    """n streams stepped as ONE batched call (see the module docstring)."""

    def __init__(self, model: Model, n: int, *, checked: bool = True) -> None:
        graph = model.bundle.graph
        if any(t.batch_axis is None for t in (*graph.inputs, *graph.outputs)):
            why = model.bundle.manifest.unbatched_why or "its inputs carry no batch axis"
            raise StreamsError(
                f"{model.bundle.path}: this model cannot step streams as one batch ({why}); "
                "use one stream() per stream"
            )
        if model.precision == "int8-dynamic" and model.backend_name != "litert":
            # DynamicQuantizeLinear picks ONE activation scale per call: batched, each stream's
            # numbers would depend on the others'. TFLite's hybrid kernel scales each row.
            raise StreamsError(
                f"streams(n) with int8-dynamic needs the litert backend: {model.backend_name} "
                "quantizes a batch's activations with one shared scale, which would couple the "
                "streams; use litert, or one stream() per stream"
            )
        if not isinstance(n, int) or n < 0:
            raise StreamsError(f"streams(n): n must be a non-negative integer, got {n!r}")
        self._model, self._checked = model, checked
        self._x_spec = model.step_input
        self._out_specs = graph.data_outputs
        self._state_specs = [graph.spec(s.input) for s in graph.states]
        self._initial = [graph.constants[s.init] for s in graph.states]
        self._ids = list(range(n))
        self._next_id = n
        self._rebuild(
            [self._tile(init, spec, n) for init, spec in zip(self._initial, self._state_specs)]
        )

    def __repr__(self) -> str:
        m = self._model
        return (
            f"<rnnedge.Streams n={len(self._ids)} of {str(m.bundle.path)!r} on "
            f"{m.backend_name}/{m.precision}>"
        )

    @property
    def ids(self) -> list[int]:
        """Stream ids in slot order: row block k of every batched array belongs to ids[k]."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def step(self, x: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """x: every stream's step input stacked along the input's batch axis, in `ids` order.
        Returns the outputs stacked the same way (a tuple when the model has several)."""
        if not self._ids:
            raise InputError("streams: there are no streams to step (add() one first)")
        if self._fast is not None:
            return self._fast(x)
        try:
            outs = self._runner.step(self._check(x) if self._checked else x)
        except RnnedgeError:
            raise
        except Exception as e:  # unchecked input can reach the interpreter; free when unraised
            raise BackendError(f"{self._model.backend.label} failed a batched step: {e}") from e
        return outs[0] if len(outs) == 1 else tuple(outs)

    def add(self, state: dict[str, np.ndarray] | None = None) -> int:
        """A new stream at the initial state (or `state`); returns its id."""
        rows = self._initial if state is None else self._checked_state(state)
        states = [
            np.concatenate([cur, r], axis=spec.batch_axis) for cur, r, spec in self._each(rows)
        ]
        self._ids.append(self._next_id)
        self._next_id += 1
        self._rebuild(states)
        return self._ids[-1]

    def remove(self, sid: int) -> None:
        """Drops stream `sid`; the others keep their states."""
        k = self._slot(sid)
        states = [
            np.delete(cur, self._rows(spec, k), axis=spec.batch_axis)
            for cur, _, spec in self._each()
        ]
        del self._ids[k]
        self._rebuild(states)

    def reset(self, sid: int | None = None) -> None:
        """Back to the initial state: stream `sid`, or all streams."""
        if sid is None:
            n = len(self._ids)
            if not n:
                return  # nothing to reset; the runner of an empty group holds no streams
            self._runner.set_state(
                [self._tile(i, s, n) for i, s in zip(self._initial, self._state_specs)]
            )
        else:
            self.set_state(sid, dict(zip((s.name for s in self._state_specs), self._initial)))

    def state(self, sid: int) -> dict[str, np.ndarray]:
        """A copy of stream `sid`'s state, by state name (shapes of one stream)."""
        k = self._slot(sid)
        return {
            spec.name: np.take(cur, self._rows(spec, k), axis=spec.batch_axis)
            for cur, _, spec in self._each()
        }

    def set_state(self, sid: int, value: dict[str, np.ndarray]) -> None:
        """Restores stream `sid`'s state (for example one read with state() elsewhere)."""
        k = self._slot(sid)
        rows = self._checked_state(value)
        states = []
        for cur, r, spec in self._each(rows):
            index = [slice(None)] * cur.ndim
            block = self._rows(spec, k)
            index[spec.batch_axis] = slice(block[0], block[-1] + 1)
            cur[tuple(index)] = r
            states.append(cur)
        self._runner.set_state(states)

    # --- internals ---------------------------------------------------------------------------

    def _rebuild(self, states: list[np.ndarray]) -> None:
        n = max(len(self._ids), 1)  # an empty group keeps a runner of one, never stepped
        self._runner = self._model.backend.runner(n)
        if self._ids:
            self._runner.set_state(states)
        what = f"step input {self._x_spec.name!r}"
        graph = self._model.bundle.graph
        self._check = step_check(graph, self._x_spec, batch_shape(self._x_spec, n), what)
        # a runner that steps all n streams in one C call (native: check, copy, call, copies)
        fast = getattr(self._runner, "fast_step", None)
        self._fast = fast(self._check if self._checked else None) if fast else None

    def _each(
        self, rows: list[np.ndarray] | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None, TensorSpec]]:
        """(current batched state, `rows` entry, spec) per state; empty arrays when n = 0."""
        current = (
            self._runner.get_state()
            if self._ids
            else [np.zeros(self._empty(s), np.float32) for s in self._state_specs]
        )
        rows = rows if rows is not None else [None] * len(current)
        return zip(current, rows, self._state_specs)

    def _slot(self, sid: int) -> int:
        try:
            return self._ids.index(sid)
        except ValueError:
            raise StreamsError(f"streams: no stream with id {sid!r} (ids: {self._ids})") from None

    def _checked_state(self, value: object) -> list[np.ndarray]:
        return check_state(value, self._state_specs, 1)

    @staticmethod
    def _rows(spec: TensorSpec, k: int) -> np.ndarray:
        per = spec.shape[spec.batch_axis]
        return np.arange(k * per, (k + 1) * per)

    @staticmethod
    def _empty(spec: TensorSpec) -> tuple[int, ...]:
        shape = list(spec.shape)
        shape[spec.batch_axis] = 0
        return tuple(shape)

    @staticmethod
    def _tile(init: np.ndarray, spec: TensorSpec, n: int) -> np.ndarray:
        return np.concatenate([init] * n, axis=spec.batch_axis) if n else init[:0]


def _signature(bundle: Bundle) -> str:
    """inputs, outputs and states with their shapes, e.g. "x[1, 1, 40] -> y[1, 1, 12]"."""
    g = bundle.graph

    def show(specs) -> str:
        return ", ".join(f"{t.name}{list(t.shape)}" for t in specs) or "-"

    states = ", ".join(f"{s.input}{list(g.spec(s.input).shape)}" for s in g.states) or "none"
    return f"inputs {show(g.inputs[:1])} outputs {show(g.data_outputs)} states {states}"


def check_state(value: object, specs: list[TensorSpec], streams: int) -> list[np.ndarray]:
    """A state dict as checked arrays in graph order (shapes for `streams` stacked streams)."""
    names = [s.name for s in specs]
    if not isinstance(value, dict) or sorted(value) != sorted(names):
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise InputError(f"state must be a dict with keys {names}, got {got}")
    return [check_array(value[s.name], batch_shape(s, streams), f"state {s.name!r}") for s in specs]
