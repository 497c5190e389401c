"""Many streams as ONE batched call: equal to single streams, independent of each other."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import random_state

import rnnedge
from rnnedge.errors import InputError, StreamsError
from rnnedge.runtime import available_backends

BATCHABLE = ["gru", "lstm_2layer", "gru_2layer_time_first", "cells", "gru_batch2", "front_end"]


def _per_stream(model, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(model.step_input.shape).astype(np.float32) for _ in range(n)]


def _stack(model, xs: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(xs, axis=model.step_input.batch_axis)


def _split(model, y, n: int) -> list[tuple]:
    """Batched outputs -> per stream tuples of outputs."""
    ys = y if isinstance(y, tuple) else (y,)
    specs = model.bundle.graph.data_outputs
    parts = [np.split(a, n, axis=s.batch_axis) for a, s in zip(ys, specs)]
    return [tuple(p[k] for p in parts) for k in range(n)]


def _as_tuple(y) -> tuple:
    return y if isinstance(y, tuple) else (y,)


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", BATCHABLE)
def test_batched_step_equals_single_streams(zoo_bundle, name, backend) -> None:
    m = rnnedge.load(zoo_bundle(name)[0], backend=backend)
    n, rng = 6, np.random.default_rng(0)
    many, singles = m.streams(n), [m.stream() for _ in range(n)]
    starts = [random_state(m.bundle.graph, rng) for _ in range(n)]
    for sid, single, start in zip(many.ids, singles, starts):
        state = {s.input: v for s, v in zip(m.bundle.graph.states, start)}
        many.set_state(sid, state)
        single.state = state
    for t in range(30):
        xs = _per_stream(m, n, rng)
        together = _split(m, many.step(_stack(m, xs)), n)
        for k in range(n):
            alone = _as_tuple(singles[k].step(xs[k]))
            for a, b in zip(together[k], alone):
                if backend == "numpy":  # BLAS may sum a batch in another order
                    np.testing.assert_allclose(a, b, atol=1e-6, err_msg=f"step {t} stream {k}")
                else:
                    np.testing.assert_array_equal(a, b, err_msg=f"step {t} stream {k}")


@pytest.mark.parametrize("backend", available_backends())
def test_add_remove_reset_leave_the_others_unchanged(zoo_bundle, backend) -> None:
    m = rnnedge.load(zoo_bundle("lstm_2layer")[0], backend=backend)
    rng = np.random.default_rng(1)
    many = m.streams(3)
    ref = {sid: m.stream() for sid in many.ids}

    def step_all() -> None:
        xs = _per_stream(m, len(many), rng)
        together = _split(m, many.step(_stack(m, xs)), len(many))
        for sid, x, y in zip(many.ids, xs, together):
            np.testing.assert_allclose(y[0], ref[sid].step(x), atol=1e-6)

    for _ in range(5):
        step_all()
    new = many.add()
    ref[new] = m.stream()
    step_all()
    many.remove(many.ids[1])
    step_all()
    many.reset(new)
    ref[new].reset()
    step_all()
    assert many.ids == [0, 2, 3] and len(many) == 3


@pytest.mark.parametrize("backend", available_backends())
def test_snapshot_and_restore_reproduce_the_continuation(zoo_bundle, backend) -> None:
    m = rnnedge.load(zoo_bundle("gru")[0], backend=backend)
    rng = np.random.default_rng(2)
    many = m.streams(4)
    for _ in range(5):
        many.step(_stack(m, _per_stream(m, 4, rng)))
    snap = many.state(2)
    xs = [_stack(m, _per_stream(m, 4, rng)) for _ in range(5)]
    first = [many.step(x) for x in xs]
    many.set_state(2, snap)
    again = [many.step(x) for x in xs]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(_split(m, a, 4)[2][0], _split(m, b, 4)[2][0])
    # a state moves to another group (another process would do the same with the arrays)
    other = m.streams(1)
    other.set_state(0, snap)
    tol = 1e-6 if backend == "numpy" else 0  # numpy's BLAS may sum a batch in another order
    np.testing.assert_allclose(other.step(xs[0][2:3]), _split(m, first[0], 4)[2][0], atol=tol)


def test_wrong_batches_and_unknown_ids_are_refused(zoo_bundle) -> None:
    m = rnnedge.load(zoo_bundle("gru")[0], backend="numpy")
    many = m.streams(3)
    with pytest.raises(
        InputError, match=r"shape \[2, 1, 8\] does not match the expected \[3, 1, 8\]"
    ):
        many.step(np.zeros((2, 1, 8), np.float32))
    with pytest.raises(InputError, match="NaN or Inf"):
        many.step(np.full((3, 1, 8), np.nan, np.float32))
    with pytest.raises(StreamsError, match="no stream with id 7"):
        many.remove(7)
    with pytest.raises(StreamsError, match="no stream with id 9"):
        many.state(9)
    with pytest.raises(InputError, match=r"state 'rnn\.h': shape"):
        many.set_state(0, {"rnn.h": np.zeros((1, 3, 16), np.float32)})
    empty = m.streams(0)
    with pytest.raises(InputError, match="no streams to step"):
        empty.step(np.zeros((0, 1, 8), np.float32))
    sid = empty.add()
    assert empty.step(np.zeros((1, 1, 8), np.float32)).shape == (1, 1, 4)
    assert empty.ids == [sid]


def test_a_model_that_mixes_the_batch_cannot_batch_streams(zoo_bundle) -> None:
    m = rnnedge.load(zoo_bundle("math_head")[0], backend="numpy")
    assert m.bundle.graph.inputs[0].batch_axis is None
    with pytest.raises(StreamsError, match="cannot step streams as one batch"):
        m.streams(2)
    assert m.stream().step(np.zeros((1, 1, 8), np.float32)).shape == (1, 1, 2)


@pytest.mark.parametrize("backend", available_backends())
def test_a_stream_per_thread(zoo_bundle, backend) -> None:
    m = rnnedge.load(zoo_bundle("gru")[0], backend=backend)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((200, 1, 1, 8)).astype(np.float32) for _ in range(4)]
    expected = [m.stream().run(xs) for xs in inputs]
    results: list = [None] * 4

    def work(k: int) -> None:
        stream = m.stream()
        results[k] = np.stack([stream.step(x) for x in inputs[k]])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_array_equal(results[k], expected[k])


@pytest.mark.parametrize("backend", available_backends())
def test_an_empty_group_can_be_reset(zoo_bundle, backend) -> None:
    many = rnnedge.load(zoo_bundle("gru")[0], backend=backend).streams(0)
    many.reset()
    sid = many.add()
    many.reset()
    assert many.ids == [sid] and many.step(np.zeros((1, 1, 8), np.float32)).shape == (1, 1, 4)
