"""The native backend's call path (runtime/backends/native_call.py): the CPython extension that
steps a Stream in one C call, and ctypes when it cannot be built.

Both paths must give the same numbers as each other (and, through test_native.py, as the numpy
spec); the extension must fall back to ctypes, saying why, when Python.h is missing; a checked
stream still checks; an output the user kept is never changed by a later step."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import zoo_int8_exporter

import rnnedge
from rnnedge.errors import BackendError, InputError
from rnnedge.runtime.backends import native_build, native_call

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="needs a C compiler")

STEPS = 300


@pytest.fixture(autouse=True)
def _default_call_path(monkeypatch):
    monkeypatch.delenv("RNNEDGE_NATIVE_CALL", raising=False)


@pytest.fixture(scope="module")
def zoo_int8_bundle(tmp_path_factory):
    """zoo_int8_bundle(name) -> the path of a zoo model exported with int8, once."""
    return zoo_int8_exporter(tmp_path_factory, steps=60, count=4)


def _load(path, precision: str, call: str, monkeypatch) -> rnnedge.Model:
    with monkeypatch.context() as m:
        if call == "ctypes":
            m.setenv("RNNEDGE_NATIVE_CALL", "ctypes")
        model = rnnedge.load(path, backend="native", precision=precision)
    assert model.backend.call_name == call, model.backend.call_reason
    return model


def _run(stream, xs) -> list[list[np.ndarray]]:
    outs = []
    for x in xs:
        y = stream.step(x)
        outs.append([*(y if isinstance(y, tuple) else (y,)), *stream.state.values()])
    return outs


def _inputs(path, steps: int, seed: int = 3) -> list[np.ndarray]:
    shape = rnnedge.load(path, backend="numpy").step_input.shape
    rng = np.random.default_rng(seed)
    return [(2 * rng.standard_normal(shape)).astype(np.float32) for _ in range(steps)]


@pytest.mark.parametrize("name", ["gru", "cells", "lstm_2layer"])
@pytest.mark.parametrize("precision", ["float", "int8"])
def test_extension_and_ctypes_give_the_same_numbers(
    zoo_int8_bundle, name, precision, monkeypatch
) -> None:
    path = zoo_int8_bundle(name)
    xs = _inputs(path, STEPS)
    ext = _load(path, precision, "extension", monkeypatch)
    cty = _load(path, precision, "ctypes", monkeypatch)
    for checked in (True, False):
        a, b = _run(ext.stream(checked=checked), xs), _run(cty.stream(checked=checked), xs)
        for t, (u, v) in enumerate(zip(a, b)):
            for p, q in zip(u, v):
                assert np.array_equal(p, q), f"{name} {precision} step {t}: extension != ctypes"


def test_state_reset_and_restore_follow_the_swapped_buffers(zoo_int8_bundle, monkeypatch) -> None:
    # the Stepper owns which buffer holds the state; state/reset must read and write that one
    path = zoo_int8_bundle("gru")
    xs = _inputs(path, 7)
    s = _load(path, "int8", "extension", monkeypatch).stream()
    ref = _load(path, "int8", "ctypes", monkeypatch).stream()
    for x in xs[:3]:  # an odd number of steps: the state sits in the second buffer
        s.step(x), ref.step(x)
    snap = s.state
    assert all(np.array_equal(snap[k], v) for k, v in ref.state.items())
    after = [s.step(x) for x in xs[3:]]
    s.state = snap
    assert all(np.array_equal(s.step(x), y) for x, y in zip(xs[3:], after))
    s.reset(), ref.reset()
    assert np.array_equal(s.step(xs[0]), ref.step(xs[0]))


def test_missing_python_headers_fall_back_to_ctypes_saying_why(
    zoo_int8_bundle, monkeypatch, tmp_path
) -> None:
    path = zoo_int8_bundle("gru")
    with monkeypatch.context() as m:
        m.setattr(native_call, "python_include", lambda: tmp_path)  # no Python.h here
        model = rnnedge.load(path, backend="native", precision="int8")
    assert model.backend.call_name == "ctypes"
    assert f"no Python.h in {tmp_path}" in model.backend.call_reason
    assert "ctypes" in model.backend.label
    xs = _inputs(path, 50)
    ext = _load(path, "int8", "extension", monkeypatch)
    assert np.array_equal(model.run(np.stack(xs)), ext.run(np.stack(xs)))


def test_missing_compiler_for_the_extension_falls_back(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(native_call, "compiler", lambda: None)
    got = native_call.call_path()
    assert got.name == "ctypes" and got.reason == "no C compiler"


@pytest.mark.parametrize("checked", [True, False])
def test_a_kept_output_is_never_changed_by_later_steps(zoo_int8_bundle, checked) -> None:
    # the outputs come from buffers the next step overwrites: step() must hand back copies
    path = zoo_int8_bundle("cells")  # several outputs (a tuple)
    s = rnnedge.load(path, backend="native", precision="int8").stream(checked=checked)
    xs = _inputs(path, 4)
    first = s.step(xs[0])
    kept = [y.copy() for y in first]
    for x in xs[1:]:
        later = s.step(x)
    assert all(np.array_equal(a, b) for a, b in zip(first, kept))
    assert not any(np.shares_memory(a, b) for a in first for b in later)
    single = rnnedge.load(zoo_int8_bundle("gru"), backend="native").stream(checked=checked)
    xg = _inputs(zoo_int8_bundle("gru"), 3)
    y0 = single.step(xg[0])
    y0_kept = y0.copy()
    y0[...] = 7.0  # the user writes into their output: the next step does not see it
    y1 = single.step(xg[1])
    assert not np.shares_memory(y0, y1) and np.isfinite(y1).all()
    assert not np.array_equal(y1, y0_kept)


def test_checked_stream_still_checks_on_the_extension(zoo_int8_bundle, monkeypatch) -> None:
    path = zoo_int8_bundle("gru")
    model = _load(path, "int8", "extension", monkeypatch)
    s, ref = model.stream(), model.stream()
    x = _inputs(path, 1)[0]
    bad = x.copy()
    bad[0, 0, 5] = np.nan
    with pytest.raises(InputError, match="step input 'x': contains NaN or Inf"):
        s.step(bad)
    bad[0, 0, 5] = np.inf
    with pytest.raises(InputError, match="contains NaN or Inf"):
        s.step(bad)
    with pytest.raises(InputError, match=r"step input 'x': shape \[1, \d+\] does not match"):
        s.step(x[0])
    # converted like every backend: float64, a list, a non-contiguous view give x's numbers
    want = ref.step(x)
    assert np.array_equal(s.step(x.astype(np.float64)), want)
    s.reset()
    assert np.array_equal(s.step(x.tolist()), want)
    s.reset()
    wide = np.repeat(x, 2, axis=2)[:, :, ::2]
    assert not wide.flags.c_contiguous
    assert np.array_equal(s.step(wide), want)
    for m in (model, _load(path, "int8", "ctypes", monkeypatch)):  # unchecked: no conversion
        with pytest.raises(BackendError, match="the model takes float32"):
            m.stream(checked=False).step(x.astype(np.float64))
    with pytest.raises(InputError, match="contains NaN or Inf"):
        _load(path, "int8", "ctypes", monkeypatch).stream().step(bad)
