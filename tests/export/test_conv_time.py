"""Capture of convolutions over time (export/capture/conv_time.py): the buffer state, its
initial value, the captured step stepped 200 times against the model over the whole sequence,
PyTorch's own step (golden.npz's states) against the graph's, and the refusals.
tests/e2e/test_conv_streams.py streams whole bundles on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from time_conv_models import (
    F_IN,
    MELS,
    CausalConvGRU,
    CenteredConv,
    PooledNoPadding,
    PooledOverTime,
    StridedConv,
    TCNFrontEnd,
)

from rnnedge.errors import ExportError, UnsupportedModelError
from rnnedge.export.capture.program import capture
from rnnedge.runtime.executor import Executor

STEPS = 200
TORCH_STEPS = 24


def _stepped(cap, xs: np.ndarray) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """The numpy float step over xs, states carried; PyTorch's step's states alongside for
    the first TORCH_STEPS steps (beyond the longest buffer; it is the slow part)."""
    g = cap.graph
    ex, ys = Executor(g), []
    states = [g.constants[s.init].copy() for s in g.states]
    ref_states = [s.copy() for s in states]
    for t, x in enumerate(xs):
        out = ex.run({g.inputs[0].name: x, **dict(zip(g.state_inputs, states))})
        states = [out[s.output] for s in g.states]
        if t >= TORCH_STEPS:
            ys.append(out[g.data_outputs[0].name])
            continue
        _, ref_states = cap.torch_step([x], ref_states)
        for got, want in zip(states, ref_states):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        ys.append(out[g.data_outputs[0].name])
    return np.stack(ys), states


@pytest.mark.parametrize(
    ("k", "dilation", "style"),
    [(3, 1, "slice"), (5, 2, "pad"), (3, 4, "const")],
)
def test_causal_conv1d_step_equals_the_model_over_the_sequence(k, dilation, style) -> None:
    torch.manual_seed(0)
    model = CausalConvGRU(k, dilation, style).eval()
    cap = capture(model, torch.zeros(1, 1, F_IN))
    g = cap.graph
    buf = g.states[0]
    assert (buf.input, g.spec(buf.input).shape) == (
        "frontend.conv.buffer",
        (1, F_IN, (k - 1) * dilation),
    )
    init = 0.5 if style == "const" else 0.0  # what the padding gives
    assert np.all(g.constants[buf.init] == init)
    assert g.inputs[0].batch_axis == 0  # streams(n) batches it
    xs = np.random.default_rng(3).standard_normal((STEPS, 1, 1, F_IN)).astype(np.float32)
    ys, _ = _stepped(cap, xs)
    with torch.no_grad():
        want = model(torch.from_numpy(xs.reshape(1, STEPS, F_IN))).numpy()
    err = np.abs(ys.reshape(STEPS, -1) - want[0]).max() / max(1.0, np.abs(want).max())
    assert err <= 1e-5, err


def test_stacked_convs_each_get_their_own_buffer() -> None:
    torch.manual_seed(0)
    model = TCNFrontEnd().eval()
    cap = capture(model, torch.zeros(1, 1, F_IN))
    g = cap.graph
    assert [(s.input, g.spec(s.input).shape) for s in g.states[:2]] == [
        ("tcn.0.buffer", (1, F_IN, 2)),
        ("tcn.1.buffer", (1, 8, 4)),
    ]
    xs = np.random.default_rng(4).standard_normal((STEPS, 1, 1, F_IN)).astype(np.float32)
    ys, _ = _stepped(cap, xs)
    with torch.no_grad():
        want = model(torch.from_numpy(xs.reshape(1, STEPS, F_IN))).numpy()
    assert np.abs(ys.reshape(STEPS, -1) - want[0]).max() <= 1e-5 * max(1.0, np.abs(want).max())


def test_a_conv_that_ignores_its_past_is_what_the_buffer_fixes() -> None:
    # can fail: with the buffer held at its initial value the step is the old, wrong capture
    torch.manual_seed(0)
    model = CausalConvGRU(3, 1, "pad").eval()
    g = capture(model, torch.zeros(1, 1, F_IN)).graph
    ex = Executor(g)
    xs = np.random.default_rng(3).standard_normal((20, 1, 1, F_IN)).astype(np.float32)
    states = [g.constants[s.init].copy() for s in g.states]
    ys = []
    for x in xs:
        out = ex.run({g.inputs[0].name: x, **dict(zip(g.state_inputs, states))})
        states = [g.constants[g.states[0].init], out[g.states[1].output]]  # buffer not carried
        ys.append(out[g.data_outputs[0].name])
    with torch.no_grad():
        want = model(torch.from_numpy(xs.reshape(1, 20, F_IN))).numpy()[0]
    assert np.abs(np.stack(ys).reshape(20, -1) - want).max() > 1e-2


@pytest.mark.parametrize(
    ("factory", "features", "match"),
    [
        (CenteredConv, F_IN, r"^Conv1d 'enc.conv' is not causal: .* reads 2 frame\(s\) after t"),
        (StridedConv, F_IN, r"^Conv1d 'down' has stride 2 along time"),
        (PooledOverTime, MELS, r"^MaxPool2d 'pool' pools over time"),
    ],
)
def test_what_a_stream_cannot_run_is_refused_naming_the_module(factory, features, match) -> None:
    with pytest.raises(UnsupportedModelError, match=match):
        capture(factory().eval(), torch.zeros(1, 1, features))


def test_a_pool_over_time_that_cannot_run_on_one_frame_is_named() -> None:
    with pytest.raises(ExportError, match=r"raised in MaxPool1d 'pool'\); a pool or a strided"):
        capture(PooledNoPadding().eval(), torch.zeros(1, 1, F_IN))
