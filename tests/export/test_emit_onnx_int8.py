"""emit_onnx at precision "int8" (export/onnx/int8.py): onnxruntime against the numpy
spec (runtime/quant/int8.py) over 200 steps, the integer kernels onnxruntime really runs,
int8 weights, file size, and batched streams."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from models import rnn_with_head

from rnnedge.export.capture.program import capture
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.onnx.int8 import as_sigmoid
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.ops import sigmoid
from rnnedge.runtime.quant.fixed import lookup_table
from rnnedge.runtime.quant.int8 import Int8Executor
from rnnedge.runtime.quant.plan import QParams, QuantPlan

FEATURES = 16
STEPS = 200
MODELS = [("gru", 32, 2), ("lstm", 64, 1), ("lstm", 16, 2), ("rnn", 48, 2)]


def _seqs(seed: int, count: int, steps: int, batch: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, steps, batch, 1, FEATURES)).astype(np.float32)


@cache
def _planned(kind: str, hidden: int, layers: int) -> tuple[Graph, QuantPlan, bytes]:
    g = capture(rnn_with_head(kind, hidden, layers, FEATURES), torch.zeros(1, 1, FEATURES)).graph
    plan = plan_int8(g, calibrate(g, list(_seqs(1, 4, 100)[:, :, 0])), cell="int16")
    return g, plan, emit_onnx(g, plan)


def _session(model: bytes, optimized: Path | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _run(s: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def _step_of(plan: QuantPlan, name: str) -> float:
    """One quantisation step of an output. The int16 LSTM cell is computed from int8 gates (an
    8-bit f times c moves c by up to 2^15 / 256 of its int16 steps), so its step is taken at
    8 bits: 256 of its int16 steps."""
    t = plan.activation(name)
    return t.scale[0] * (256 if t.dtype == "int16" else 1)


@pytest.mark.parametrize("kind, hidden, layers", MODELS)
def test_onnxruntime_within_two_steps_of_the_spec_over_200_steps(kind, hidden, layers):
    g, plan, model = _planned(kind, hidden, layers)
    s, spec = _session(model), Int8Executor(g, plan)
    state = g.initial_state()
    worst = dict.fromkeys([t.name for t in g.outputs], 0.0)
    for x in _seqs(2, 1, STEPS)[0]:
        got, ref = _run(s, {"x": x, **state}), spec.run({"x": x, **state})
        for name in worst:
            diff = float(np.abs(got[name] - ref[name]).max()) / _step_of(plan, name)
            worst[name] = max(worst[name], diff)
        # onnxruntime's float state is fed back to BOTH, so each step compares one step's
        # arithmetic (free-running, a one-step difference in h is carried on by both)
        state = {p.input: got[p.output] for p in g.states}
    print(f"{kind} h{hidden} x{layers}: max |onnx - spec| in steps {worst}")
    assert max(worst.values()) <= 2 + 1e-3, worst  # float32 dequantisation: 1e-3 of a step


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_integer_kernels_after_optimisation_and_int8_weights(kind, tmp_path):
    g, plan, model = _planned(kind, 64, 1) if kind == "lstm" else _planned(kind, 32, 2)
    _session(model, tmp_path / "opt.onnx")
    optimized = onnx.load(str(tmp_path / "opt.onnx"))
    ops = {n.op_type for n in optimized.graph.node}
    assert not ops & {"MatMul", "Gemm", "FusedMatMul", "FusedGemm"}, ops
    assert {"MatMulInteger", "QLinearAdd", "QLinearMul"} <= ops, ops
    if any(n.op == "linear" and len(n.inputs) == 2 for n in g.nodes):  # no bias
        assert "QLinearMatMul" in ops, ops
    assert "QLinearSigmoid" in ops and "Sigmoid" not in ops
    inits = {
        i.name: onnx.numpy_helper.to_array(i)
        for i in onnx.load_from_string(model).graph.initializer
    }
    linears = [n for n in g.nodes if n.op == "linear"]
    assert linears and all(plan.weight(n.outputs[0]) is not None for n in linears)
    int8 = sorted(a.shape for a in inits.values() if a.dtype == np.int8 and a.ndim == 2)
    assert int8 == sorted(g.constants[n.inputs[1]].shape[::-1] for n in linears)
    assert not {n.inputs[1] for n in linears} & set(inits)  # no float copy of a weight
    # what stays float is per-channel scales (1-D); every matrix is an integer tensor
    assert all(a.ndim <= 1 for a in inits.values() if a.dtype.kind == "f")


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_file_is_at_most_30_percent_of_float_at_hidden_128(kind):
    # at hidden 64 with 16 input features it is 0.34: a K=16 input row holds 16 bytes of
    # int8 weights next to 8 bytes of int32 bias and float32 requantisation scale
    g, _, model = _planned(kind, 128, 1)
    ratio = len(model) / len(emit_onnx(g))
    print(f"{kind} h128: int8 {len(model)} B, {ratio:.3f} of float")
    assert ratio <= 0.30


def test_batch_of_three_equals_three_single_streams():
    g, _, model = _planned("lstm", 16, 2)
    s = _session(model)
    xs = _seqs(5, 1, 20, batch=3)[0]  # (steps, 3, 1, F)
    batched = {k: np.concatenate([v] * 3, axis=1) for k, v in g.initial_state().items()}
    singles = [g.initial_state() for _ in range(3)]
    for x in xs:
        out = _run(s, {"x": x, **batched})
        batched = {p.input: out[p.output] for p in g.states}
        for i, st in enumerate(singles):
            one = _run(s, {"x": x[i : i + 1], **st})
            singles[i] = {p.input: one[p.output] for p in g.states}
            np.testing.assert_array_equal(out["y"][i : i + 1], one["y"])
            for p in g.states:
                np.testing.assert_array_equal(out[p.output][:, i : i + 1], one[p.output])


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_qlinear_sigmoid_tables_match_the_spec_lut(op):
    # every u8 input (int8 + 128) through onnxruntime's QLinearSigmoid against the spec's
    # lookup table
    p, r = (
        QParams("int8", 0.0371, 3),
        (QParams("int8", 1 / 256, -128) if op == "sigmoid" else QParams("int8", 1 / 128, 0)),
    )
    (pi, ri) = as_sigmoid(op, p, r)
    scalar = onnx.numpy_helper.from_array
    ins = ["x", "s", "z", "os", "oz"]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("QLinearSigmoid", ins, ["y"], domain="com.microsoft")],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, [256])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, [256])],
        [scalar(np.float32(pi.scale), "s"), scalar(np.uint8(pi.zp + 128), "z"),
         scalar(np.float32(ri.scale), "os"), scalar(np.uint8(ri.zp + 128), "oz")],
    )  # fmt: skip
    m = onnx.helper.make_model(
        graph,
        opset_imports=[
            onnx.helper.make_opsetid("", 17),
            onnx.helper.make_opsetid("com.microsoft", 1),
        ],
    )
    got = _session(m.SerializeToString()).run(None, {"x": np.arange(256, dtype=np.uint8)})[0]
    fn = sigmoid if op == "sigmoid" else np.tanh
    ref = lookup_table(fn, p.scale, p.zp, r.scale, r.zp) + 128
    diff = np.abs(got.astype(int) - ref)
    print(f"{op}: {int((diff > 0).sum())} of 256 table entries differ from the spec")
    assert diff.max() <= 1
