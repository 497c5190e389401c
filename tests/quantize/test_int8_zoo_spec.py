"""Every model of the test zoo, planned in full int8, runs on every backend within 2
quantisation steps of the numpy integer spec (issue 16's "every int8 file equals the spec"),
given the same input and state at every step, over 100 steps of two sequences. The files
are emitted and opened in memory (no golden vectors or gates), so the whole zoo is quick."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from models import ZOO, build

from rnnedge.export.capture.program import capture
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.runtime.backends import available_backends
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.steps import steps_apart
from rnnedge.runtime.manifest import Manifest, ModelFile, state_specs

# not planned in full int8 today, each for a reason outside this test (planner issues)
NOT_INT8: dict[str, str] = {}


def _bundle(name: str) -> tuple[Bundle, list[np.ndarray]]:
    model, example = build(name)
    g = capture(model, example).graph
    rng = np.random.default_rng(0)
    shape = g.inputs[0].shape
    calib = [rng.standard_normal((100, *shape)).astype(np.float32) for _ in range(4)]
    plan = plan_int8(g, calibrate(g, calib))
    files = {
        "quant.json": plan.to_json().encode(),
        "model.int8.onnx": emit_onnx(g, plan),
        "model.int8.tflite": emit_tflite(g, plan),
    }
    manifest = Manifest(
        producer="test", inputs=g.inputs, outputs=g.outputs, states=state_specs(g), files={},
        models=(ModelFile(path="model.int8.onnx", backend="onnx", precision="int8"),
                ModelFile(path="model.int8.tflite", backend="tflite", precision="int8")),
    )  # fmt: skip
    seqs = [rng.standard_normal((100, *shape)).astype(np.float32) for _ in range(2)]
    return Bundle(Path(f"{name}.rnnedge"), manifest, g, files), seqs


@pytest.mark.parametrize("name", [n for n in ZOO if n not in NOT_INT8])
def test_every_backend_equals_the_int8_spec_on_the_zoo(name):
    bundle, seqs = _bundle(name)
    for backend in ("litert", "onnxruntime"):
        if backend in available_backends():
            steps = steps_apart(bundle, backend, sequences=seqs)
            assert max(steps.values(), default=0.0) <= 2, (name, backend, steps)


def test_gru_int8_onnx_drops_the_zero_hidden_side_r_z_biases():
    import onnx
    from models import rnn_with_head
    from onnx import numpy_helper

    g = capture(rnn_with_head("gru", 64, 1, 8), torch.zeros(1, 1, 8)).graph
    rng = np.random.default_rng(0)
    plan = plan_int8(g, calibrate(g, [rng.standard_normal((50, 1, 1, 8)) for _ in range(4)]))
    model = onnx.load_from_string(emit_onnx(g, plan))
    int32 = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == 6]
    # gates_x's bias [192] is whole; gates_h's holds only n's 64 entries, padded at load
    assert sorted(len(b) for b in int32 if b.ndim == 1) == [8, 64, 192]
    assert sum(n.op_type == "Pad" for n in model.graph.node) == 1
