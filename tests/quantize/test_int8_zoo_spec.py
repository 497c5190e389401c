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


def test_gru_int8_onnx_writes_biases_and_scales_short_and_onnxruntime_folds_them(tmp_path):
    import onnx
    import onnxruntime as ort
    from models import rnn_with_head
    from onnx import numpy_helper

    g = capture(rnn_with_head("gru", 64, 1, 8), torch.zeros(1, 1, 8)).graph
    rng = np.random.default_rng(0)
    plan = plan_int8(g, calibrate(g, [rng.standard_normal((50, 1, 1, 8)) for _ in range(4)]))
    data = emit_onnx(g, plan)
    model = onnx.load_from_string(data)
    inits = [numpy_helper.to_array(t) for t in model.graph.initializer]
    # int16 biases: gates_x's [192] whole; gates_h's only n's 64 entries, padded at load
    assert sorted(len(b) for b in inits if b.dtype == np.int16) == [8, 64, 192]
    assert not [b for b in inits if b.dtype == np.int32]
    assert sum(n.op_type == "Pad" for n in model.graph.node) == 1
    # per-channel weight scales in float16, no float32 multiplier per channel
    assert sorted(len(s) for s in inits if s.dtype == np.float16) == [8, 192, 192]
    assert all(s.ndim == 0 for s in inits if s.dtype == np.float32)
    # onnxruntime folds the widening, the padding and the multipliers into constants
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert not {"Pad", "Div"} & set(ops), ops
    assert ops.count("Cast") == 3, ops  # only the int32 sums of the three linears, per step


def test_int8_weight_scales_are_float16_values():
    from rnnedge.quantize.int8_dynamic import half_exact, weight_scales
    from rnnedge.runtime.quant.plan import quantize_weight

    rng = np.random.default_rng(3)
    w = (rng.standard_normal((200, 9)) * 10 ** rng.uniform(-2, 2, (200, 1))).astype(np.float32)
    base = np.asarray(weight_scales(w), np.float32)
    s = np.asarray(half_exact(tuple(base)), np.float32)
    assert np.array_equal(s.astype(np.float16).astype(np.float32), s)  # 2 bytes hold each
    assert (np.abs(s / base - 1) <= 2**-11).all()  # the nearest: as fine a grid
    # every row's largest weight is still +-127 (|w| / s <= 127.06 rounds to 127)
    assert (np.abs(quantize_weight(w, tuple(s)).astype(int)).max(axis=1) == 127).all()
    # outside float16's normal range a scale stays the float32 it was
    assert half_exact((1e-6, 1e6, 2.0**-14)) == (float(np.float32(1e-6)), 1e6, 2.0**-14)
