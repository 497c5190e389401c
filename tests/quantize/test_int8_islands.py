"""A float island (an op with no int8 kernel: layer_norm, pow) that feeds a linear ends in
QUANTIZE at its calibrated range, so the linear and its weights are int8 per channel. Before,
the linear ran in float, weights and all ("op 'linear' reads x, which is not int8"): a
transformers RWKV-4 kept its LM head (after ln_out) and every FFN value linear (after pow)
float, and its int8 file was 49-65% of the float one. A linear writing a graph output (an LM
head) is int8 too, its output at the calibrated range with headroom; the int8-vs-float check
counts the float values that grid clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnedge.export.capture.program import capture
from rnnedge.export.pipeline import export_bundle
from rnnedge.export.tflite import emit_tflite
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.fidelity import compare, float_outputs, int8_outputs, representable
from rnnedge.quantize.int8 import plan_int8
from rnnedge.quantize.islands import HEAD_HEADROOM
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.quant.plan import QuantPlan

STEPS = 240
RANGE_FRACTION = 0.03  # all-int8 (no mixed precision) vs PyTorch: the realistic zoo's bound
F = 8


class NormedHead(nn.Module):
    """GRU -> a squared-ReLU FFN (pow feeds its value linear) -> LayerNorm -> a wide linear
    -> tanh -> out: the shape of an RWKV block's FFN and of a linear after a norm."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(F, 64, batch_first=True)
        self.key, self.value = nn.Linear(64, 128), nn.Linear(128, 64)
        self.norm, self.head = nn.LayerNorm(64), nn.Linear(64, 128)
        self.out = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gru(x)[0]
        y = self.head(self.norm(h + self.value(torch.relu(self.key(h)) ** 2)))
        return self.out(torch.tanh(y))


def _model_and_data():
    torch.manual_seed(0)
    model = NormedHead().eval()
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((128, 1, 1, F)).astype(np.float32) for _ in range(6)]
    return model, calib


def _linear_reading(graph, op: str):
    producer = {n.outputs[0]: n for n in graph.nodes}
    (node,) = [n for n in graph.nodes if n.op == "linear" and producer.get(n.inputs[0], n).op == op]
    return node


def test_linears_after_layer_norm_and_pow_are_int8_and_the_file_shrinks():
    model, calib = _model_and_data()
    graph = capture(model, torch.zeros(1, 1, F)).graph
    ranges = calibrate(graph, calib)
    plan = plan_int8(graph, ranges)
    for op in ("layer_norm", "pow"):
        lin = _linear_reading(graph, op)
        w = plan.weight(lin.outputs[0])
        assert w is not None and w.dtype == "int8" and w.axis == 0, (op, w)
        assert plan.activation(lin.inputs[0]).dtype == "int8", op  # the island ends in QUANTIZE
        assert plan.activation(lin.outputs[0]).dtype == "int8", op
    # mixed precision can still keep the island float: its linear's activations go float
    # with it, its weights stay int8 (weight-only, test_int8_weight_only.py) unless the plan
    # keeps them float too (float_weights=None: every float linear's, as before weight-only)
    head = _linear_reading(graph, "layer_norm")
    keep = {head.inputs[0]: "mixed precision"}
    kept = plan_int8(graph, ranges, keep_float=keep, float_weights=None)
    assert kept.weight(head.outputs[0]) is None
    assert kept.activation(head.outputs[0]).dtype == "float32"
    weight_only = plan_int8(graph, ranges, keep_float=keep)
    assert weight_only.weight(head.outputs[0]).dtype == "int8"
    assert weight_only.activation(head.outputs[0]).dtype == "float32"
    # the head's weights int8 save 3 of their 4 float bytes each (less their scales)
    size = {"float": len(emit_tflite(graph)), "now": len(emit_tflite(graph, plan))}
    size["kept"] = len(emit_tflite(graph, kept))
    assert size["kept"] - size["now"] >= 2.5 * graph.constants[head.inputs[1]].size, size
    assert size["now"] <= 0.35 * size["float"], size


def test_the_int8_spec_with_the_islands_quantized_streams_within_budget_of_pytorch():
    model, calib = _model_and_data()
    graph = capture(model, torch.zeros(1, 1, F)).graph
    plan = plan_int8(graph, calibrate(graph, calib))
    assert plan.weight(_linear_reading(graph, "layer_norm").outputs[0]) is not None
    xs = np.random.default_rng(9).standard_normal((STEPS, 1, 1, F)).astype(np.float32)
    with torch.no_grad():  # PyTorch the way the user runs it: the whole sequence at once
        want = model(torch.from_numpy(xs.reshape(1, STEPS, F)))[0].numpy()
    (got,) = int8_outputs(graph, plan, [xs])["y"]  # the integer state carried step to step
    err = np.abs(got.reshape(STEPS, -1) - want).max(axis=1) / np.ptp(want)
    assert err.max() <= RANGE_FRACTION, f"int8 spec vs PyTorch: {err.max():.2%} of the output range"
    q = STEPS // 4
    assert err[-q:].mean() <= 2 * err[:q].mean() + 0.005  # no drift along the stream


@pytest.mark.slow  # an int8 export with its fidelity check and every backend's gate
def test_export_keeps_the_head_int8_within_the_budget(tmp_path):
    model, calib = _model_and_data()
    path = export_bundle(
        model, torch.zeros(1, 1, F), tmp_path / "n.rnnedge", quantize="int8", calibration=calib
    )
    bundle = read_bundle(path)
    plan = QuantPlan.from_json(bundle.files["quant.json"])
    for op in ("layer_norm", "pow"):  # the budget held with them int8: none was kept float
        assert plan.weight(_linear_reading(bundle.graph, op).outputs[0]) is not None, op


class NormThenOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru, self.norm, self.out = (
            nn.GRU(F, 16, batch_first=True),
            nn.LayerNorm(16),
            nn.Linear(16, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.gru(x)[0]))


def test_a_linear_writing_a_graph_output_is_int8_and_clipping_is_measured():
    # an LM head after its final norm: int8 weights, its output int8 at the calibrated range
    # widened by the output headroom (it kept its island float, weights and all, before)
    _, calib = _model_and_data()
    torch.manual_seed(0)
    graph = capture(NormThenOutput().eval(), torch.zeros(1, 1, F)).graph
    ranges = calibrate(graph, calib)
    plan = plan_int8(graph, ranges)
    out = _linear_reading(graph, "layer_norm")
    assert plan.weight(out.outputs[0]) is not None
    assert plan.activation(out.inputs[0]).dtype == "int8"
    (lo, hi) = representable(plan, ["y"])["y"]
    c_lo, c_hi = ranges.ranges["y"]
    # more headroom than other outputs get (it was float): a quarter of the width each side
    pad = HEAD_HEADROOM * (c_hi - c_lo)
    assert lo <= c_lo - 0.98 * pad and hi >= c_hi + 0.98 * pad, (lo, hi, c_lo, c_hi)
    # data beyond calibration (here: calibrated on 3 steps) is clipped in int8: the fidelity
    # says how much, never silently
    short = plan_int8(graph, calibrate(graph, [calib[0][:3]]))
    (lo, hi) = representable(short, ["y"])["y"]
    ref = float_outputs(graph, calib)
    quiet = compare("c", int8_outputs(graph, plan, calib), float_outputs(graph, calib), {})
    fid = compare("held", int8_outputs(graph, short, calib), ref, representable(short, ref))
    flat = np.concatenate(ref["y"]).ravel()
    want = 100 * float(((flat < lo) | (flat > hi)).mean())
    assert quiet.outputs[0].clipped_pct is None  # not asked: not measured
    assert fid.outputs[0].clipped_pct == pytest.approx(want) and want > 0, want
