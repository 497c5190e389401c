"""Every model kind, every backend, 200 steps with the state carried, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, random_state
from models import ZOO

import rnnedge
from rnnedge.runtime import available_backends

STEPS = 200


@pytest.mark.parametrize("start", ["initial", "random"])
@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", list(ZOO))
def test_backend_matches_pytorch_step_by_step(zoo_bundle, name, backend, start) -> None:
    path, cap, _ = zoo_bundle(name)
    model = rnnedge.load(path, backend=backend)
    assert model.backend_name == backend
    g = model.bundle.graph
    rng = np.random.default_rng(1)
    stream = model.stream()
    ref_states = [g.constants[s.init] for s in g.states]
    if start == "random":
        ref_states = random_state(g, rng)
        stream.state = {s.input: v for s, v in zip(g.states, ref_states)}
    for t in range(STEPS):
        x = rng.standard_normal(g.inputs[0].shape).astype(np.float32)
        ys = stream.step(x)
        ref_ys, ref_states = cap.torch_step([x], ref_states)
        ys = ys if isinstance(ys, tuple) else (ys,)
        for spec, y, ref in zip(g.data_outputs, ys, ref_ys):
            assert_close(y, ref, f"{name}/{backend} step {t} output {spec.name}")
        for s, ref in zip(g.states, ref_states):
            assert_close(stream.state[s.input], ref, f"{name}/{backend} step {t} state {s.input}")
