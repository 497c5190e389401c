"""The Stream API: inputs checked against the manifest, state read/write, reset, run."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import rnnedge
from rnnedge.errors import BackendError, BundleError, InputError
from rnnedge.runtime import available_backends


@pytest.fixture(scope="module")
def gru_path(zoo_bundle):
    return zoo_bundle("gru")[0]


@pytest.mark.parametrize("backend", available_backends())
def test_run_equals_single_steps(gru_path, backend) -> None:
    xs = np.random.default_rng(0).standard_normal((30, 1, 1, 8)).astype(np.float32)
    m = rnnedge.load(gru_path, backend=backend)
    one = m.stream()
    stepped = np.stack([one.step(x) for x in xs])
    np.testing.assert_array_equal(m.stream().run(xs), stepped)
    assert m.stream().run(xs[:0]).shape == (0, 1, 1, 4)


@pytest.mark.parametrize("backend", available_backends())
def test_reset_and_state_restore_reproduce_the_continuation(gru_path, backend) -> None:
    xs = np.random.default_rng(1).standard_normal((20, 1, 1, 8)).astype(np.float32)
    s = rnnedge.load(gru_path, backend=backend).stream()
    first = s.run(xs)
    s.reset()
    np.testing.assert_array_equal(s.run(xs), first)
    snap = s.state
    cont = s.run(xs)
    s.state = snap
    np.testing.assert_array_equal(s.run(xs), cont)
    assert not np.array_equal(cont, first)  # the state really carries over


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((1, 8), np.float32), r"shape \[1, 8\] does not match the expected \[1, 1, 8\]"),
        (np.zeros((1, 1, 8), np.int32), "dtype int32 is not a float type"),
        (np.full((1, 1, 8), np.nan, np.float32), "NaN or Inf"),
        (np.full((1, 1, 8), np.inf, np.float32), "NaN or Inf"),
        ("hello", "dtype <U5 is not a float type"),
    ],
)
def test_bad_step_input_is_refused_clearly(gru_path, x, message) -> None:
    s = rnnedge.load(gru_path, backend="numpy").stream()
    with pytest.raises(InputError, match=message):
        s.step(x)


def test_float64_and_noncontiguous_inputs_are_converted(gru_path) -> None:
    x = np.random.default_rng(2).standard_normal((1, 1, 16))[:, :, ::2]  # float64, strided
    a, b = (rnnedge.load(gru_path, backend="numpy").stream() for _ in range(2))
    readonly = np.ascontiguousarray(x, np.float32)
    readonly.flags.writeable = False
    np.testing.assert_array_equal(a.step(x), b.step(readonly))


def test_bad_state_is_refused(gru_path) -> None:
    s = rnnedge.load(gru_path, backend="numpy").stream()
    with pytest.raises(InputError, match=r"keys \['rnn.h'\]"):
        s.state = {"h": np.zeros((1, 1, 16), np.float32)}
    with pytest.raises(InputError, match=r"state 'rnn\.h': shape"):
        s.state = {"rnn.h": np.zeros((1, 16), np.float32)}


def test_state_from_another_bundle_is_refused(zoo_bundle, gru_path) -> None:
    lstm = rnnedge.load(zoo_bundle("lstm_2layer")[0], backend="numpy").stream()
    with pytest.raises(InputError, match="state must be a dict with keys"):
        rnnedge.load(gru_path, backend="numpy").stream().state = lstm.state


def test_unknown_backend_and_precision(gru_path) -> None:
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'"):
        rnnedge.load(gru_path, backend="tensorrt")
    with pytest.raises(BundleError, match="no onnx model in precision 'int8'"):
        rnnedge.load(gru_path, backend="onnxruntime", precision="int8")


def test_auto_prefers_litert(gru_path) -> None:
    # native (the bundle's C) comes first where a C compiler is installed
    first = "native" if "native" in available_backends() else "litert"
    assert rnnedge.load(gru_path).backend_name == available_backends()[0] == first


def test_unchecked_stream_gives_the_same_numbers(gru_path) -> None:
    m = rnnedge.load(gru_path, backend="litert")
    x = np.random.default_rng(4).standard_normal((1, 1, 8)).astype(np.float32)
    assert_close(m.stream(checked=False).step(x), m.stream().step(x), "unchecked vs checked", 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_non_finite_position_is_caught(gru_path, bad) -> None:
    s = rnnedge.load(gru_path, backend="numpy").stream()
    for i in range(8):
        x = np.zeros((1, 1, 8), np.float32)
        x[0, 0, i] = bad
        with pytest.raises(InputError, match="NaN or Inf"):
            s.step(x)
    big = np.full((1, 1, 8), 3e38, np.float32)  # finite, though its sum would overflow
    assert np.isfinite(s.step(big)).all()


@pytest.mark.parametrize("backend", available_backends())
def test_state_never_aliases_the_callers_arrays(zoo_bundle, backend) -> None:
    s = rnnedge.load(zoo_bundle("state_copies_input")[0], backend=backend).stream()
    buf = np.zeros((1, 3), np.float32)
    seen = []
    for value in (1.0, 2.0, 4.0):
        buf[:] = value  # an audio loop refills one buffer in place
        seen.append(s.step(buf).copy())
    np.testing.assert_array_equal(np.concatenate(seen)[:, 0], [1.0, 1.0, 2.0])
    y = s.step(buf)
    y[:] = 99.0  # the caller owns its outputs
    np.testing.assert_array_equal(s.state["prev"], buf)


# numpy is not here: its executor has no interpreter that could raise on a wrong input
@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "numpy"])
def test_unchecked_run_gives_an_rnnedge_error_for_wrong_input(gru_path, backend) -> None:
    s = rnnedge.load(gru_path, backend=backend).stream(checked=False)
    with pytest.raises(BackendError, match="failed a step"):
        s.run(np.zeros((3, 1, 1, 9), np.float32))
