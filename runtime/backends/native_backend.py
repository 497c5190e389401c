"""The native backend: the bundle's generated C step (export/c/), compiled once with the
system compiler (native_build.py) and called with every buffer bound once: one stream through
the call extension (native_call.py: checks, copies and the call in one C function), or ctypes
when the extension cannot be built (`call_reason` says why); n streams the same way, through
rnnedge_step_n.

A runner owns its buffers: the input, two sets of state buffers that swap roles every step
(no state copy), the data outputs and its own workspace, so runners on different threads
share only the read-only library. n streams run in one call (rnnedge_step_n); the C wants
each tensor's streams one after another, which the caller's arrays stacked along the batch
axis already are when no dim before that axis exceeds 1 (bound as views); otherwise the runner
moves the batch axis to the front and back (a copy of the input and outputs, not the state).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.backends.native_build import build
from rnnedge.runtime.backends.native_call import call_path
from rnnedge.runtime.backends.native_layout import check_layout
from rnnedge.runtime.backends.probe import probe
from rnnedge.runtime.backends.runner import batch_shape
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import INDEX_DTYPES, Graph, TensorSpec

PRECISIONS = ("float", "int8", "int8-dynamic")
_LIBS: dict[Path, ctypes.CDLL] = {}
_LOCK = threading.Lock()
# what the C's nonzero return means (a checked stream refuses such an id before the call)
_BAD_ID = "native failed a step: a token id is outside its embedding table"
# a library this big (its weights) steps for tens of us: the call releases the GIL for it
NOGIL_BYTES = 1 << 20


def c_files(precision: str) -> tuple[str, str]:
    """The bundle's C files of a precision (export/c/program.c_file_names writes them)."""
    stem = "model" if precision == "float" else f"model.{precision}"
    return f"{stem}.c", f"{stem}.h"


def _load(path: Path) -> ctypes.CDLL:
    with _LOCK:
        if path not in _LIBS:
            try:
                _LIBS[path] = ctypes.CDLL(str(path))
            except OSError as e:
                raise BackendError(f"native backend: cannot load {path} ({e})") from e
        return _LIBS[path]


class NativeBackend:
    name = "native"

    def __init__(self, bundle: Bundle, precision: str) -> None:
        if precision not in PRECISIONS:
            raise BackendError(f"native backend: precision {precision!r} is not available")
        c_name, h_name = c_files(precision)
        self.label = f"native ({c_name})"
        if c_name not in bundle.files or h_name not in bundle.files:
            raise BackendError(
                f"{bundle.path}: has no {c_name} for the native backend (exported by an older "
                "rnnedge, or the model has an op without a C kernel: "
                "`rnnedge export --target c` names it)"
            )
        check_layout(bundle.files[c_name], bundle.graph, f"native backend: {bundle.path}/{c_name}")
        self.library = build(bundle.files[c_name], bundle.files[h_name], c_name, h_name)
        self.call = call_path()
        # "extension", or "ctypes" and the reason (no Python.h, ...): said, never printed
        self.call_name, self.call_reason = self.call.name, self.call.reason
        self.label = f"native ({c_name}, {self.call_name})"
        lib = _load(self.library)
        self.c_step = lib.rnnedge_step
        self.c_step_n = lib.rnnedge_step_n
        # no argtypes: ctypes arrays and a c_void_p passed as they are cost less per call
        # than ints converted by argtypes (measured in docs/native.md)
        for fn in (self.c_step, self.c_step_n):
            fn.restype = ctypes.c_int
        self.workspace_bytes = ctypes.c_long.in_dll(lib, "rnnedge_workspace_bytes").value
        # the batched rnnedge_step_n's (export/c/batched.py); C from before it looped the step
        try:
            n_bytes = ctypes.c_long.in_dll(lib, "rnnedge_workspace_n_bytes").value
        except ValueError:
            n_bytes = 0
        self.workspace_n_bytes = max(n_bytes, self.workspace_bytes)
        self.c_step_each = getattr(lib, "rnnedge_step_each", None)
        self.graph = bundle.graph
        probe(self.run, bundle, self.label)

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        r = NativeRunner(self, 1)
        # token ids go in as the manifest's int32/int64 (the C reads them as such)
        ins = [np.ascontiguousarray(f, t.dtype) for f, t in zip(feeds, self.graph.inputs)]
        outs = [np.empty(t.shape, np.float32) for t in self.graph.outputs]
        r.call(ins, outs)
        return outs

    def runner(self, streams: int = 1) -> NativeRunner:
        return NativeRunner(self, streams)


def _pointers(arrays: list[np.ndarray]) -> ctypes.Array:
    return (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])


class NativeRunner:
    def __init__(self, backend: NativeBackend, streams: int) -> None:
        g: Graph = backend.graph
        self._n = streams
        self._backend = backend
        self._step, self._step_n = backend.c_step, backend.c_step_n
        self._in_spec = g.inputs[0]
        self._state_specs = [g.spec(s.input) for s in g.states]
        self._out_specs = list(g.data_outputs)
        n = streams
        self._x = np.zeros((n, *self._in_spec.shape), self._in_spec.dtype)
        self._x_shape = batch_shape(self._in_spec, n)
        self._states = [
            [np.zeros((n, *s.shape), np.float32) for s in self._state_specs] for _ in range(2)
        ]
        self._ys = [np.zeros((n, *t.shape), np.float32) for t in self._out_specs]
        ws_bytes = backend.workspace_bytes if n == 1 else backend.workspace_n_bytes
        raw = np.zeros(ws_bytes + 64, np.uint8)
        offset = -raw.ctypes.data % 64
        self._ws_buf = raw  # keeps the workspace alive
        self._ws = ctypes.c_void_p(raw.ctypes.data + offset)
        self._bound = [
            (_pointers([self._x, *self._states[p]]), _pointers([*self._ys, *self._states[1 - p]]))
            for p in (0, 1)
        ]
        self._p = 0
        self._n_c = ctypes.c_int(n)
        # the input and data outputs as the caller sees them (views: np.copyto into them is the
        # cheapest copy); for n streams, when stacking along the batch axis lays the streams
        # one after another as the C wants (no dim > 1 before it), else None (to_streams)
        stacked = n == 1 or all(stacks(t) for t in (self._in_spec, *self._out_specs))
        self._x0 = self._x.reshape(self._x_shape) if stacked else None
        self._y_views = tuple(
            y.reshape(batch_shape(t, n)) for y, t in zip(self._ys, self._out_specs)
        )
        self._y0 = self._y_views[0] if len(self._ys) == 1 else None
        # with the call extension the Stepper owns the parity from here on (none: ctypes)
        self._stepper = self._make_stepper() if stacked and self._ys else None

    def call(self, ins: list[np.ndarray], outs: list[np.ndarray]) -> None:
        """One step of one stream on caller buffers (contiguous, the inputs' dtypes)."""
        if self._step(_pointers(ins), _pointers(outs), self._ws):
            raise BackendError(_BAD_ID)

    def refuse_input(self, x: object) -> None:
        """An unchecked input the bound buffer cannot take as it is: a one-line error."""
        x = np.asarray(x)
        raise BackendError(
            f"native failed a step: the input is {x.dtype} {list(x.shape)}, the model "
            f"takes {self._x.dtype} {list(self._x_shape)}"
        )

    @staticmethod
    def refuse_step(rc: int) -> None:
        raise BackendError(_BAD_ID)  # rc 1: a token id outside its table

    def fast_step(self, check: Callable[[object], np.ndarray] | None) -> Callable | None:
        """x -> the output (a tuple when several) in one C call, for a Stream: `check` (the
        Stream's input check) runs in C for finite float32 input of the right shape, in
        Python otherwise. Without the extension, a closure around the ctypes call."""
        st = self._stepper
        if st is None:
            return self._ctypes_step(check) if self._x0 is not None else None
        if check is None:
            return st.step
        if self._in_spec.dtype in INDEX_DTYPES:  # ids: the range check is Python's
            step = st.step
            return lambda x: step(check(x))
        st.check = check
        return st.checked_step

    def _ctypes_step(self, check: Callable[[object], np.ndarray] | None) -> Callable:
        """fast_step without the extension: the same work as step(), with every lookup the
        call can skip bound once in a closure (the Python around a ctypes call is ~1 us)."""
        ws, bound, copyto = self._ws, self._bound, np.copyto
        step = self._step if self._n == 1 else functools.partial(self._step_n, self._n_c)
        x0, dtype, shape = self._x0, self._x.dtype, self._x_shape
        ys, y0 = self._y_views, self._y0

        def fast(x: object) -> np.ndarray | tuple[np.ndarray, ...]:
            if check is not None:
                x = check(x)
            elif type(x) is not np.ndarray or x.dtype != dtype or x.shape != shape:
                self.refuse_input(x)
            copyto(x0, x)
            ins, outs = bound[self._p]
            if step(ins, outs, ws):
                raise BackendError(_BAD_ID)
            self._p ^= 1
            return y0.copy() if y0 is not None else tuple(y.copy() for y in ys)

        return fast

    def step(self, x: np.ndarray) -> list[np.ndarray]:
        if self._stepper is not None:
            out = self._stepper.step(x)
            return [out] if self._y0 is not None else list(out)
        if x.dtype != self._x.dtype or x.shape != self._x_shape:  # an unchecked input
            self.refuse_input(x)
        if self._x0 is not None:
            np.copyto(self._x0, x)
        else:
            self._x[...] = to_streams(x, self._in_spec, self._n)
        ins, outs = self._bound[self._p]
        if self._n == 1:
            rc = self._step(ins, outs, self._ws)
        else:
            rc = self._step_n(self._n_c, ins, outs, self._ws)
        if rc:  # 1: a token id outside its table
            raise BackendError(_BAD_ID)
        self._p ^= 1
        if self._x0 is not None:
            return [y.copy() for y in self._y_views]
        return [from_streams(y, t, self._n) for y, t in zip(self._ys, self._out_specs)]

    def bound_call(self) -> Callable[[], object]:
        """The bare ctypes call on the buffers bound once, no copies (what benches time)."""
        ins, outs = self._bound[0]
        if self._n == 1:
            return lambda: self._step(ins, outs, self._ws)
        return lambda: self._step_n(self._n_c, ins, outs, self._ws)

    def each_call(self) -> Callable[[], object]:
        """rnnedge_step_each: the n streams as n single steps in one C loop (benches)."""
        ins, outs = self._bound[0]
        each = self._backend.c_step_each
        return lambda: each(self._n_c, ins, outs, self._ws)

    def empty_call(self) -> Callable[[], object]:
        """rnnedge_step_n(0, ...): a ctypes call with the same arguments that does no work."""
        ins, outs = self._bound[0]
        zero = ctypes.c_int(0)
        return lambda: self._step_n(zero, ins, outs, self._ws)

    def empty_step(self) -> Callable | None:
        """Stepper.step on a C step that does nothing (same checks, copies and outputs):
        the extension's call path alone, what benches time; None under ctypes."""
        module = self._backend.call.module
        if module is None or self._n != 1:
            return None
        return self._make_stepper(module.noop_address()).step

    def _make_stepper(self, step: int | None = None) -> object | None:
        """The extension's Stepper on this one-stream runner's bound buffers (None: ctypes).
        `step`: the address of another function with rnnedge_step's signature (a no-op)."""
        module = self._backend.call.module
        if module is None:
            return None
        if step is None:
            step = ctypes.cast(self._step if self._n == 1 else self._step_n, ctypes.c_void_p).value
        (i0, o0), (i1, o1) = self._bound
        # a long step frees the GIL (a big library, or many streams)
        nogil = self._n > 1 or self._backend.library.stat().st_size > NOGIL_BYTES
        return module.Stepper(
            step,
            *(ctypes.addressof(a) for a in (i0, o0, i1, o1)),
            self._ws.value,
            self._x0,
            self._y_views,
            self.refuse_input,
            self.refuse_step,
            nogil,
            0 if self._n == 1 else self._n,  # n > 0: step is rnnedge_step_n over n streams
        )

    def _parity(self) -> int:
        return self._p if self._stepper is None else self._stepper.parity

    def get_state(self) -> list[np.ndarray]:
        return [
            from_streams(s, spec, self._n)
            for s, spec in zip(self._states[self._parity()], self._state_specs)
        ]

    def set_state(self, states: list[np.ndarray]) -> None:
        for buf, s, spec in zip(self._states[self._parity()], states, self._state_specs):
            buf[...] = to_streams(s, spec, self._n)


def stacks(spec: TensorSpec) -> bool:
    """Whether n copies of `spec` stacked along its batch axis lie one stream after another
    in memory (every dim before the axis is 1), i.e. are already the C's [n, *spec.shape]."""
    return spec.batch_axis is not None and all(d == 1 for d in spec.shape[: spec.batch_axis])


def to_streams(a: np.ndarray, spec: TensorSpec, n: int) -> np.ndarray:
    """A batched array (n streams stacked along spec.batch_axis) -> [n, *spec.shape]."""
    if n == 1:
        return np.asarray(a).reshape(1, *spec.shape)
    ax = spec.batch_axis
    shape = spec.shape
    split = np.asarray(a).reshape(*shape[:ax], n, shape[ax], *shape[ax + 1 :])
    return np.moveaxis(split, ax, 0)


def from_streams(a: np.ndarray, spec: TensorSpec, n: int) -> np.ndarray:
    """[n, *spec.shape] -> the batched array (a new one the caller owns)."""
    if n == 1:
        return a[0].copy()
    ax = spec.batch_axis
    shape = list(spec.shape)
    shape[ax] *= n
    # always a copy: with the batch axis first, moveaxis and reshape would give views of the
    # runner's buffers, which the next step overwrites
    return np.moveaxis(a, 0, ax).reshape(shape).copy()
