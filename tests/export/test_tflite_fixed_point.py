"""Int8Executor(rounding="tflite") (issue 16): the numpy integer spec in TFLite's fixed point
equals LiteRT's builtin int8 kernels bit for bit: the kernels LiteRT runs without the XNNPACK
delegate, and (docs/arm64.md) the integers LiteRT int8 gives on arm64. Zoo models, calibrated
and planned here (a float zoo bundle has no int8 file), both sides free-running >= 200 steps
with their own states fed back as a runner does, 0 quantisation steps apart on every integer
output.
The default rounding ("fp32") is what XNNPACK on x86 does; against the builtin kernels it is
a few steps off, which shows the comparison can fail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import litert_interpreter, litert_invoke
from models import build

from rnnedge.export.capture.program import capture
from rnnedge.export.tflite import emit_tflite
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.spec_drift import spec_rounding
from rnnedge.runtime.check.steps import steps_apart
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.inputs import sample_input
from rnnedge.runtime.manifest import Manifest, ModelFile, state_specs
from rnnedge.runtime.quant.fixed import requantize_fn, ruy_requantize_fn, srdhm
from rnnedge.runtime.quant.int8 import Int8Executor
from rnnedge.runtime.quant.plan import QuantPlan

litert = pytest.importorskip("ai_edge_litert.interpreter")

STEPS = 200
FAST = [("gru", "float"), ("lstm_2layer", "float"), ("rnn_relu", "float")]
SLOW = [("lstm_2layer", "int16"), ("front_end", "float"), ("math_head", "float"),
        ("two_rnns", "float"), ("lstm_proj", "float"), ("rnn_tanh_2layer", "float")]  # fmt: skip


def _planned(name: str, cell: str) -> tuple[Graph, QuantPlan, bytes]:
    model, example = build(name)
    g = capture(model, example).graph
    seqs = [_sequence(g, seed, 100) for seed in range(4)]
    plan = plan_int8(g, calibrate(g, seqs), cell=cell)
    return g, plan, emit_tflite(g, plan)


def _sequence(g: Graph, seed: int, steps: int) -> dict[str, np.ndarray] | np.ndarray:
    rng = np.random.default_rng(seed)
    xs = {t.name: 1.5 * sample_input(g, t, rng, (steps,)) for t in g.data_inputs}
    return next(iter(xs.values())) if len(xs) == 1 else xs


def _steps_apart(g: Graph, plan: QuantPlan, data: bytes, rounding: str) -> dict[str, float]:
    """Max |LiteRT builtin - spec| per output over STEPS steps, in its quantisation steps (a
    float output, the LSTM cell, in its own units: 0 means bit for bit there too)."""
    interp, spec = litert_interpreter(data), Int8Executor(g, plan, rounding=rounding)
    seq = _sequence(g, 7, STEPS)
    mine, ref = g.initial_state(), g.initial_state()
    worst = {t.name: 0.0 for t in g.outputs}
    for k in range(STEPS):
        x = {n: v[k] for n, v in seq.items()} if isinstance(seq, dict) else {"x": seq[k]}
        got, want = litert_invoke(interp, {**x, **mine}), spec.run({**x, **ref})
        for t in g.outputs:
            p = spec.params[t.name]
            diff = float(np.abs(got[t.name].astype(np.float64) - want[t.name]).max())
            worst[t.name] = max(worst[t.name], diff if p is None else round(diff / p.scale))
        mine = {s.input: got[s.output] for s in g.states}
        ref = {s.input: want[s.output] for s in g.states}
    return worst


def _check(name: str, cell: str) -> None:
    g, plan, data = _planned(name, cell)
    apart = _steps_apart(g, plan, data, "tflite")
    ints = {t.name: apart[t.name] for t in g.outputs if plan.params(t.name) is not None}
    assert ints == {n: 0.0 for n in ints}, apart
    # a float output (the float LSTM cell, or math_head's h, which feeds float-only ops) is
    # float32 arithmetic, TFLite's float kernels against numpy's: measured 0 on the LSTM
    # cell, 1 ulp (6e-8) on math_head's h
    assert all(apart[n] <= 1e-6 for n in apart if n not in ints), apart


@pytest.mark.parametrize("case", FAST, ids=lambda c: f"{c[0]}-{c[1]}")
def test_tflite_rounding_equals_litert_builtin_kernels(case):
    _check(*case)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=lambda c: f"{c[0]}-{c[1]}")
def test_tflite_rounding_equals_litert_builtin_kernels_on_more_models(case):
    _check(*case)


def test_fp32_rounding_is_not_what_the_builtin_kernels_do():
    g, plan, data = _planned("gru", "float")
    apart = _steps_apart(g, plan, data, "fp32")
    assert max(apart.values()) >= 1, apart


def test_check_holds_litert_to_the_rounding_of_its_platform():
    assert spec_rounding("litert", "aarch64") == spec_rounding("litert", "arm64") == "tflite"
    assert spec_rounding("litert", "x86_64") == "fp32"
    assert spec_rounding("onnxruntime", "aarch64") == "fp32"


def test_steps_apart_measures_against_the_spec_in_the_rounding_asked():
    g, plan, data = _planned("gru", "float")
    manifest = Manifest(
        producer="test", inputs=g.inputs, outputs=g.outputs, states=state_specs(g), files={},
        models=(ModelFile(path="model.int8.tflite", backend="tflite", precision="int8"),),
    )  # fmt: skip
    files = {"quant.json": plan.to_json().encode(), "model.int8.tflite": data}
    bundle = Bundle(Path("gru.rnnedge"), manifest, g, files)
    seqs = [_sequence(g, 7, STEPS)]
    # the numpy backend is the fp32 spec: 0 from itself, >= 1 step from the tflite rounding
    assert max(steps_apart(bundle, "numpy", sequences=seqs).values()) == 0
    assert max(steps_apart(bundle, "numpy", sequences=seqs, rounding="tflite").values()) >= 1


def test_fixed_point_ties_on_hand_computed_values():
    # x * 1/8 at the ties -0.5, 0.5, -1.5: ruy (FULLY_CONNECTED) rounds them toward +inf,
    # gemmlowp's RoundingDivideByPOT away from zero
    x = np.array([-4, 4, -12])
    assert ruy_requantize_fn(0.125)(x).tolist() == [0, 1, -1]
    assert requantize_fn(0.125)(x).tolist() == [-1, 1, -2]
    # SRDHM is not odd: 2^30 * -1 / 2^31 = -0.5 rounds to 0, so SUB must negate the
    # multiplier (as sub.cc does), not the product
    assert srdhm(np.array([1 << 30]), -1).tolist() == [0]
    assert (-srdhm(np.array([1 << 30]), 1)).tolist() == [-1]


def _op_cases() -> list[str]:
    from op_cases import CASES, graph_of, ids

    return [c for c in ids("torch") if len(graph_of(c).inputs) == 1 and "tflite" in CASES[c].layers]


@pytest.mark.parametrize("case", _op_cases())
def test_tflite_rounding_equals_litert_builtin_kernels_on_every_op(case):
    # each one-node case of tests/op_cases.py (issue 14's int8 on every op), 30 steps
    from op_cases import CASES, graph_of

    c, g = CASES[case], graph_of(case)
    x, y = g.inputs[0], g.outputs[0].name

    def data(seed: int, steps: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if x.dtype != "float32":
            return sample_input(g, x, rng, (steps,))
        return rng.uniform(c.low, c.high, (steps, *x.shape)).astype(np.float32)

    plan = plan_int8(g, calibrate(g, [data(s, 20) for s in range(5)]))
    interp, spec = (
        litert_interpreter(emit_tflite(g, plan)),
        Int8Executor(g, plan, rounding="tflite"),
    )
    for xv in map(np.asarray, data(9, 30)):
        got, want = litert_invoke(interp, {x.name: xv})[y], spec.run({x.name: xv})[y]
        if plan.params(y) is None:  # a float island: TFLite's float kernel against numpy's
            assert np.abs(got - want).max(initial=0) <= 1e-5 * max(1.0, np.abs(want).max(initial=0))
        else:  # in whole steps: DEQUANTIZE's float product may differ by an ulp
            steps = np.rint(np.abs(got.astype(np.float64) - want) / plan.params(y).scale)
            assert steps.max(initial=0) == 0, case
