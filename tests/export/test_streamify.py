"""A streamified model's steps equal PyTorch's whole-sequence run at every time step, and a
model that takes its state keeps its signature."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_close

import rnnedge

# models whose forward(x) runs over a whole sequence; value: the time axis of x
SEQUENCE_MODELS = {
    "gru": 1,
    "gru_2layer_time_first": 0,
    "lstm_2layer": 1,
    "lstm_proj": 1,
    "rnn_tanh_2layer": 0,
    "gru_batch2": 1,
    "two_rnns": 1,
}
T = 60


@pytest.mark.parametrize("name", list(SEQUENCE_MODELS))
def test_streamed_steps_equal_sequence_run(zoo_bundle, name) -> None:
    path, _, model = zoo_bundle(name)
    axis = SEQUENCE_MODELS[name]
    m = rnnedge.load(path, backend="numpy")
    step_shape = m.step_input.shape
    seq_shape = list(step_shape)
    seq_shape[axis] = T
    xs = np.random.default_rng(2).standard_normal(seq_shape).astype(np.float32)
    with torch.no_grad():
        full = model(torch.from_numpy(xs)).numpy()
    for backend in rnnedge.runtime.available_backends():
        stream = rnnedge.load(path, backend=backend).stream()
        for t in range(T):
            y = stream.step(np.take(xs, [t], axis=axis))
            assert_close(y, np.take(full, [t], axis=axis), f"{name}/{backend} step {t}")


def test_explicit_state_model_keeps_its_signature(zoo_bundle) -> None:
    path, _, model = zoo_bundle("gru_explicit_state")
    g = rnnedge.load(path, backend="numpy").bundle.graph
    assert [t.name for t in g.inputs] == ["x", "h"]
    assert [(s.input, s.output) for s in g.states] == [("h", "h_out")]
    assert g.spec("h").shape == (2, 1, 16)
    # the reference itself is the user's module called with its own signature
    stream = rnnedge.load(path, backend="numpy").stream()
    h = torch.zeros(2, 1, 16)
    rng = np.random.default_rng(3)
    for t in range(20):
        x = rng.standard_normal((1, 1, 8)).astype(np.float32)
        with torch.no_grad():
            y, h = model(torch.from_numpy(x), h)
        assert_close(stream.step(x), y.numpy(), f"step {t} output")
        assert_close(stream.state["h"], h.numpy(), f"step {t} state")


def test_streamified_states_are_named_after_their_module(zoo_bundle) -> None:
    path, _, _ = zoo_bundle("two_rnns")
    g = rnnedge.load(path, backend="numpy").bundle.graph
    assert list(g.state_inputs) == ["gru.h", "lstm.h", "lstm.c"]
    assert all(not np.any(g.constants[s.init]) for s in g.states)  # nn.GRU's default h0 is 0
