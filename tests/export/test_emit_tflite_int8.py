"""Full-integer TFLite ("int8", issue 3): LiteRT running the emitted file against the numpy spec
(runtime/quant/int8.py), step by step with the float states fed back as a runner does.

LiteRT as deployed (its default XNNPACK delegate, which requantizes int8 in float32, and the
builtin fixed-point kernels for the int16 LSTM cell) equals the spec bit for bit, except where
XNNPACK's polynomial tanh meets the LSTM cell's float tanh island (<= 1 step, measured). Without the
delegate, LiteRT's builtin int8 kernels round in fixed point, so there the outputs are held to
a few quantisation steps only."""

from __future__ import annotations

import numpy as np
import pytest
import tflite
import torch
from helpers import litert_interpreter, litert_invoke
from models import rnn_with_head

from rnnedge.export.capture.program import capture
from rnnedge.export.tflite import emit_tflite
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.quant.int8 import Int8Executor
from rnnedge.runtime.quant.plan import QuantPlan

litert = pytest.importorskip("ai_edge_litert.interpreter")

FEATURES = 16
STEPS = 200
MODELS = [("gru", 16, 2), ("lstm", 32, 1), ("lstm", 16, 2), ("rnn", 24, 2), ("lstm", 64, 1)]
T = tflite.TensorType


def _planned(kind: str, hidden: int, layers: int) -> tuple[Graph, QuantPlan]:
    g = capture(rnn_with_head(kind, hidden, layers, FEATURES), torch.zeros(1, 1, FEATURES)).graph
    rng = np.random.default_rng(1)
    seqs = [rng.standard_normal((100, 1, 1, FEATURES)).astype(np.float32) for _ in range(3)]
    return g, plan_int8(g, calibrate(g, seqs), cell="int16")


def _worst_steps(g: Graph, plan: QuantPlan, interp, xs: np.ndarray) -> dict[str, float]:
    """Max |LiteRT - spec| of each output over the steps, in its quantisation steps."""
    spec = Int8Executor(g, plan)
    mine, ref = g.initial_state(), g.initial_state()
    worst = {t.name: 0.0 for t in g.outputs}
    for x in xs:
        got = litert_invoke(interp, {"x": x, **mine})
        want = spec.run({"x": x, **ref})
        for t in g.outputs:
            assert got[t.name].dtype == np.float32 and got[t.name].shape == want[t.name].shape
            # in whole steps: LiteRT's DEQUANTIZE may round the float product 1 ulp
            # differently from the spec's (the integers behind it are equal)
            diff = np.abs(got[t.name].astype(np.float64) - want[t.name]).max()
            worst[t.name] = max(worst[t.name], float(np.rint(diff / spec.params[t.name].scale)))
        mine = {s.input: got[s.output] for s in g.states}  # each fed back its own states
        ref = {s.input: want[s.output] for s in g.states}
    return worst


@pytest.fixture(scope="module")
def emitted():
    out = {}
    for m in MODELS:
        g, plan = _planned(*m)
        out[m] = (g, plan, emit_tflite(g, plan))
    return out


def _inputs(seed: int, steps: int = STEPS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1.5 * rng.standard_normal((steps, 1, 1, FEATURES))).astype(np.float32)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m[0]}{m[1]}x{m[2]}")
def test_default_kernels_equal_the_spec_bit_for_bit(emitted, model):
    g, plan, data = emitted[model]
    worst = _worst_steps(g, plan, litert_interpreter(data, delegate=True), _inputs(2))
    if model[0] != "lstm":
        assert worst == {t.name: 0.0 for t in g.outputs}
        return
    # the LSTM cell's tanh is a float island (DEQUANTIZE, TANH, QUANTIZE) and XNNPACK's
    # float TANH is a polynomial, not the exact tanh the spec tabulates: one step at a table
    # edge now and then (measured: y, h <= 1 step, the int16 cell <= 93 of its own steps)
    for t in g.outputs:
        unit = 256 if plan.activation(t.name).dtype == "int16" else 1
        assert worst[t.name] <= 2 * unit, worst


@pytest.mark.parametrize("model", MODELS[:3], ids=lambda m: f"{m[0]}{m[1]}x{m[2]}")
def test_builtin_kernels_within_a_few_steps_of_the_spec(emitted, model):
    g, plan, data = emitted[model]
    worst = _worst_steps(g, plan, litert_interpreter(data, delegate=False), _inputs(3))
    # measured: data outputs <= 2 steps, int8 h <= 3, the int16 cell <= ~430 of its 2^15
    # steps (1.7 int8 steps), each side carrying its own state; the builtin kernels round
    # the int8 ops in fixed point (gemmlowp / ruy) where XNNPACK and the spec use float32
    for t in g.data_outputs:
        assert worst[t.name] <= 4, worst
    for s in g.states:
        limit = 1000 if plan.activation(s.output).dtype == "int16" else 6
        assert worst[s.output] <= limit, worst


def test_file_holds_int8_weights_and_int_activations(emitted):
    g, plan, data = emitted[("lstm", 64, 1)]
    model = tflite.Model.GetRootAsModel(data, 0)
    sub = model.Subgraphs(0)
    tensors = {sub.Tensors(i).Name().decode(): sub.Tensors(i) for i in range(sub.TensorsLength())}
    weights = [n.inputs[1] for n in g.nodes if n.op == "linear"]
    for w in weights:
        t = tensors[f"{w}:int8"]
        q = t.Quantization()
        assert t.Type() == T.INT8 and q.QuantizedDimension() == 0
        assert q.ScaleLength() == g.constants[w].shape[0]
        planned = next(t for t in plan.tensors if t.tensor == w and t.source == "weight")
        np.testing.assert_allclose(q.ScaleAsNumpy(), planned.scale, rtol=1e-6)
    assert not any(n in tensors for n in weights)  # no float copy of a weight
    # boundary: float32 model I/O under the Graph names, the plan's integers inside
    for t in (*g.inputs, *g.outputs):
        assert tensors[t.name].Type() == T.FLOAT32
        p = plan.activation(t.name)
        inner = tensors[f"{t.name}:q"]
        assert inner.Type() == {"int8": T.INT8, "int16": T.INT16}[p.dtype]
        assert inner.Quantization().ScaleAsNumpy()[0] == np.float32(p.scale[0])
        assert inner.Quantization().ZeroPointAsNumpy()[0] == p.zero_point[0]
    # measured 0.384 here (0.31 at hidden 128): per output channel the file also holds a
    # weight scale, a bias scale and an int32 bias, and the graph's structure is fixed
    float_size = len(emit_tflite(g))
    assert len(data) <= 0.40 * float_size, (len(data), float_size)


def test_op_versions_follow_the_tensor_types(emitted):
    _, _, data = emitted[("lstm", 16, 2)]
    model = tflite.Model.GetRootAsModel(data, 0)
    op = tflite.BuiltinOperator
    versions = {}
    for i in range(model.OperatorCodesLength()):
        c = model.OperatorCodes(i)
        versions.setdefault(c.BuiltinCode(), set()).add(c.Version())
    # op_version.cc: int8 FULLY_CONNECTED with keep_num_dims 5 / without 4, int16 ADD with
    # general scales 3, int16 MUL 4, int8 MUL 2, QUANTIZE to int16 2, DEQUANTIZE int16 3
    assert versions[op.FULLY_CONNECTED] <= {4, 5}
    assert versions[op.ADD] == {2, 3}
    assert versions[op.MUL] >= {2, 4}
    assert 2 in versions[op.QUANTIZE] and 3 in versions[op.DEQUANTIZE]
    assert versions[op.LOGISTIC] == {2}


@pytest.mark.parametrize("delegate", [False, True])
def test_streams_stay_independent_in_a_batch(emitted, delegate):
    g, _, data = emitted[("lstm", 16, 2)]
    single = litert_interpreter(data, delegate)
    batched = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.AUTO
        if delegate
        else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    n = 3
    for d in batched.get_input_details():
        spec = next(t for t in g.inputs if t.name == d["name"])
        shape = list(spec.shape)
        shape[spec.batch_axis] *= n
        batched.resize_tensor_input(d["index"], shape)
    batched.allocate_tensors()
    xs = [_inputs(10 + i, 30) for i in range(n)]
    states = [g.initial_state() for _ in range(n)]
    bstate = {s.input: np.concatenate([st[s.input] for st in states], axis=_axis(g, s.input))
              for s in g.states}  # fmt: skip
    for step in range(30):
        outs = [litert_invoke(single, {"x": xs[i][step], **states[i]}) for i in range(n)]
        states = [{s.input: o[s.output] for s in g.states} for o in outs]
        bx = np.concatenate([x[step] for x in xs], axis=_axis(g, "x"))
        b = litert_invoke(batched, {"x": bx, **bstate})
        bstate = {s.input: b[s.output] for s in g.states}
        for t in g.outputs:
            want = np.concatenate([o[t.name] for o in outs], axis=_axis(g, t.name))
            np.testing.assert_array_equal(b[t.name], want)


def _axis(g: Graph, name: str) -> int:
    return next(t.batch_axis for t in (*g.inputs, *g.outputs) if t.name == name)
