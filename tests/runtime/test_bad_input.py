"""Bad input at run time, beyond tests/runtime/test_runtime.py: every dtype, odd layouts, refusals
that leave the state untouched, state aliasing, states from other bundles, unchecked streams.

The policy (README "Input checks", docs/reliability.md): exact shape; float16/float64 (and
Python lists of floats) are converted to float32; every other dtype is refused; NaN/Inf is
refused in inputs and in states; a refused call changes nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnedge
from rnnedge.errors import InputError, RnnedgeError
from rnnedge.runtime import available_backends

X = np.random.default_rng(0).standard_normal((1, 1, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def models(zoo_bundle):
    path = zoo_bundle("gru")[0]
    return {b: rnnedge.load(path, backend=b) for b in available_backends()}


@pytest.fixture(scope="module")
def gru(models):
    return models["numpy"]


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64, object]
)
def test_non_float_dtypes_are_refused_by_name(gru, dtype) -> None:
    with pytest.raises(InputError, match=f"dtype {np.dtype(dtype)} is not a float type"):
        gru.stream().step(np.zeros((1, 1, 8), dtype))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_widths_are_converted_to_float32(gru, dtype) -> None:
    x = X.astype(dtype)
    np.testing.assert_array_equal(gru.stream().step(x), gru.stream().step(x.astype(np.float32)))


def test_a_nested_list_is_converted(gru) -> None:
    np.testing.assert_array_equal(gru.stream().step(X.tolist()), gru.stream().step(X))


@pytest.mark.parametrize(
    "shape", [(), (8,), (1, 8), (1, 1, 1, 8), (8, 1, 1), (1, 1, 9), (0, 1, 8), (2, 1, 8)]
)
def test_every_wrong_shape_is_refused_with_both_shapes(gru, shape) -> None:
    with pytest.raises(InputError, match=r"shape \[.*\] does not match the expected \[1, 1, 8\]"):
        gru.stream().step(np.zeros(shape, np.float32))


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize(
    "layout",
    [
        lambda x: np.asfortranarray(x.reshape(1, 8).T).T.reshape(1, 1, 8),
        lambda x: x[:, :, ::-1].copy()[:, :, ::-1],  # negative strides
        lambda x: np.repeat(x, 2, axis=2)[:, :, ::2],  # a strided view
        lambda x: np.broadcast_to(x[:, :, :1], (1, 1, 8)) * 0 + x,  # computed, fresh
    ],
)
def test_any_memory_layout_gives_the_same_numbers(models, backend, layout) -> None:
    m = models[backend]
    x = layout(X)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(m.stream().step(x), m.stream().step(X.copy()))


@pytest.mark.parametrize("backend", available_backends())
def test_read_only_input_is_accepted_and_never_written(models, backend) -> None:
    x = X.copy()
    x.flags.writeable = False
    s = models[backend].stream()
    for _ in range(3):
        s.step(x)
    np.testing.assert_array_equal(x, X)


def test_a_zero_stride_broadcast_input_is_accepted(gru) -> None:
    x = np.broadcast_to(np.float32(0.5), (1, 1, 8))  # read-only, strides (0, 0, 0)
    np.testing.assert_array_equal(gru.stream().step(x), gru.stream().step(np.full_like(X, 0.5)))


@pytest.mark.parametrize("backend", available_backends())
def test_a_refused_step_leaves_the_state_untouched(models, backend) -> None:
    s = models[backend].stream()
    s.step(X)
    before = s.state
    for bad in (np.full_like(X, np.nan), np.zeros((1, 8), np.float32), X.astype(np.int32)):
        with pytest.raises(InputError):
            s.step(bad)
    after = s.state
    np.testing.assert_array_equal(after["rnn.h"], before["rnn.h"])


def test_a_run_with_one_bad_step_is_refused_whole(gru) -> None:
    xs = np.repeat(X[None], 10, axis=0)
    xs[7, 0, 0, 3] = np.inf
    s = gru.stream()
    with pytest.raises(InputError, match="NaN or Inf"):
        s.run(xs)
    # nothing ran: the state is still the initial one
    np.testing.assert_array_equal(s.state["rnn.h"], gru.stream().state["rnn.h"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_state_is_refused(gru, bad) -> None:
    s = gru.stream()
    h = np.zeros((1, 1, 16), np.float32)
    h[0, 0, 5] = bad
    with pytest.raises(InputError, match=r"state 'rnn\.h': contains NaN or Inf"):
        s.state = {"rnn.h": h}


def test_a_state_of_the_wrong_dtype_is_refused(gru) -> None:
    with pytest.raises(InputError, match="dtype int32 is not a float type"):
        gru.stream().state = {"rnn.h": np.zeros((1, 1, 16), np.int32)}


def test_the_state_is_copied_in_and_out(gru) -> None:
    """Neither the array given to `state =` nor the dict read from `.state` aliases the
    stream's own state: changing them later must not change what the stream computes."""
    s, ref = gru.stream(), gru.stream()
    given = np.full((1, 1, 16), 0.25, np.float32)
    s.state = {"rnn.h": given}
    ref.state = {"rnn.h": given.copy()}
    given[:] = 99.0  # the caller reuses its buffer
    s.state["rnn.h"][:] = -99.0  # or scribbles on what it read
    np.testing.assert_array_equal(s.step(X), ref.step(X))


def test_a_state_from_a_bundle_with_other_shapes_is_refused(zoo_bundle, gru) -> None:
    # same state name ("rnn.h"), but two layers: (2, 1, 16) instead of (1, 1, 16)
    other = rnnedge.load(zoo_bundle("gru_2layer_time_first")[0], backend="numpy").stream()
    assert list(other.state) == ["rnn.h"]
    with pytest.raises(InputError, match=r"state 'rnn\.h': shape \[2, 1, 16\] does not match"):
        gru.stream().state = other.state


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "numpy"])
def test_an_unchecked_stream_gives_an_rnnedge_error_for_wrong_input(models, backend) -> None:
    """checked=False skips the checks; a wrong input then fails inside the interpreter, and
    that failure is still an RnnedgeError naming the backend, never a raw exception."""
    s = models[backend].stream(checked=False)
    for bad in (np.zeros((1, 1, 9), np.float32), np.zeros((1, 1, 8), np.int64)):
        with pytest.raises(RnnedgeError, match=backend.replace("litert", "LiteRT")):
            s.step(bad)
