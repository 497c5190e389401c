"""Stacked states planned slice by slice (issue 16, quantize/stacked.py): an LSTM cell whose
h and c are stacked in one state tensor keeps h int8 with its own parameters (and the LSTM's
weights int8) instead of the whole stack going float, and every backend still equals the
numpy spec, stepped with the state carried."""

from __future__ import annotations

import numpy as np
import torch
from conv_models import conv_lstm, noise_sequences

import rnnedge
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.backends import available_backends
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.check.steps import steps_apart
from rnnedge.runtime.quant.plan import read_plan

STEPS = 200


def test_stacked_h_and_c_get_their_own_parameters_and_backends_equal_the_spec(tmp_path):
    model, example = conv_lstm(3)
    path = export_bundle(
        model,
        example,
        tmp_path / "stacked.rnnedge",
        quantize="int8",
        calibration=noise_sequences(1, 6, 80),
        # every tensor int8 that the scheme allows: this test holds the planning of the stack
        int8_budget={"max_err_pct": 100.0, "allow_drift": True},
    )
    bundle = read_bundle(path)
    plan = read_plan(bundle.files, str(path))
    # h is int8 at its own scale; the stack (the state at the file boundary) is float
    assert plan.activation("cell.h").dtype == "int8"
    assert plan.activation("state").dtype == "float32"
    assert "stacked state" in plan.activation("concat").why
    # so the LSTM's recurrent weights are int8, and the files far below float's size
    assert plan.weight("cell.gates_h") is not None
    for fmt in ("onnx", "tflite"):
        ratio = len(bundle.files[f"model.int8.{fmt}"]) / len(bundle.files[f"model.{fmt}"])
        assert ratio < 0.6, (fmt, ratio)  # 1.0 when the stack kept h float
    xs = noise_sequences(7, 1, STEPS)
    for backend in available_backends():
        if backend != "numpy":
            apart = steps_apart(bundle, backend, sequences=xs)
            assert max(apart.values()) <= 2, (backend, apart)
    # and against PyTorch stepped with its own state fed back
    state, ref = example[1].clone(), []
    with torch.no_grad():
        for x in xs[0]:
            y, state = model(torch.from_numpy(x), state)
            ref.append(y.numpy().reshape(-1))
    ref_arr = np.stack(ref)
    got = rnnedge.load(path, backend="numpy", precision="int8").stream().run(xs[0])
    err = np.abs(np.asarray(got).reshape(STEPS, -1) - ref_arr).max()
    assert err <= 0.01, err  # a probability; its int8 grid is 1/256 (measured 0.0024)
