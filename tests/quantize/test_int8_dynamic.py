"""int8-dynamic (issue 3, first slice): calibration, the plan, and the ONNX, TFLite and numpy
int8-dynamic models against float, against each other, and in the files themselves."""

from __future__ import annotations

import json
import os
import re
import tempfile

import numpy as np
import onnx
import pytest
import tflite
import torch
from models import rnn_with_head
from onnx import numpy_helper
from torch import nn

import rnnedge
from rnnedge.errors import InputError
from rnnedge.export.pipeline import export_bundle
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8_dynamic import plan_int8_dynamic
from rnnedge.runtime.backends import BACKENDS
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.graph import Graph, Node, StatePair, TensorSpec
from rnnedge.runtime.quant.plan import QuantPlan

P = "int8-dynamic"

STEPS = 300
FEATURES = 16


# --- calibration -------------------------------------------------------------------------


def _accumulator() -> Graph:
    # h' = h + x (state), y = 2 h': ranges are cumulative sums, easy to compute by hand
    f = np.float32
    return Graph(
        inputs=(TensorSpec(name="x", shape=(1, 2)), TensorSpec(name="h", shape=(1, 2))),
        outputs=(TensorSpec(name="y", shape=(1, 2)), TensorSpec(name="h_out", shape=(1, 2))),
        nodes=(
            Node(op="add", inputs=("h", "x"), outputs=("h_out",)),
            Node(op="mul", inputs=("h_out", "two"), outputs=("y",)),
        ),
        constants={"two": f(2) * np.ones((1, 2), f), "h0": np.array([[1, -1]], f)},
        states=(StatePair(input="h", output="h_out", init="h0"),),
    )


def test_calibration_carries_state_from_the_initial_state():
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((20, 1, 2)).astype(np.float32) for _ in range(3)]
    r = calibrate(_accumulator(), seqs)
    # by hand: h after t steps = h0 + cumsum(x), restarted from h0 for every sequence
    hs = np.concatenate([np.array([[1, -1]]) + np.cumsum(s[:, 0], axis=0) for s in seqs])
    assert r.ranges["h_out"] == pytest.approx((hs.min(), hs.max()), rel=1e-5)
    assert r.ranges["y"] == pytest.approx((2 * hs.min(), 2 * hs.max()), rel=1e-5)
    assert (r.sequences, r.steps, r.method) == (3, 60, "minmax")
    p = calibrate(_accumulator(), seqs, percentile=90)
    assert p.ranges["h_out"] == pytest.approx(tuple(np.percentile(hs, [10, 90])), rel=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "no sequences"),
        ([np.zeros((5, 1, 3), np.float32)], "is not (T, [1, 2])"),
        ([np.full((5, 1, 2), np.nan, np.float32)], "NaN or Inf"),
        ([np.zeros((0, 1, 2), np.float32)], "T >= 1"),
    ],
)
def test_bad_calibration_data_is_refused_clearly(bad, message):
    with pytest.raises(InputError, match=re.escape(message)):
        calibrate(_accumulator(), bad)


# --- the plan ----------------------------------------------------------------------------


def _rnn(kind: str, hidden: int, layers: int) -> nn.Module:
    return rnn_with_head(kind, hidden, layers, FEATURES)


def test_plan_is_per_channel_symmetric_and_round_trips():
    from rnnedge.export.capture.program import capture

    g = capture(_rnn("gru", 64, 1), torch.zeros(1, 1, FEATURES)).graph
    plan = plan_int8_dynamic(g)
    linears = [n for n in g.nodes if n.op == "linear"]
    assert len(plan.quantized) == len(linears) > 0
    for t in plan.quantized:
        w = g.constants[t.tensor]
        assert t.axis == 0 and set(t.zero_point) == {0}
        np.testing.assert_allclose(t.scale, np.abs(w).max(axis=1) / 127, rtol=1e-6)
    assert QuantPlan.from_json(plan.to_json()) == plan


# --- accuracy, agreement and files, per model ---------------------------------------------

# the default run: every kind and depth at hidden 64; hidden 128 (the same plans and kernels,
# wider ranges) under -m slow, to keep `make test` within its budget
MODELS = [
    pytest.param(k, h, n, marks=[pytest.mark.slow] if h > 64 else [])
    for k in ("gru", "lstm", "rnn")
    for h in (64, 128)
    for n in (1, 2)
]


def _sequences(seed: int, count: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((steps, 1, 1, FEATURES)).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8dyn")
    cache: dict = {}

    def get(kind: str, hidden: int, layers: int):
        key = (kind, hidden, layers)
        if key not in cache:
            calib = _sequences(1, 4, 50)  # calibrated on one set ...
            out = root / f"{kind}{hidden}x{layers}.rnnedge"
            cache[key] = export_bundle(
                _rnn(*key), torch.zeros(1, 1, FEATURES), out, quantize=P, calibration=calib
            )
        return cache[key]

    return get


def _run(path, backend: str, precision: str, xs: np.ndarray) -> np.ndarray:
    return np.asarray(rnnedge.load(path, backend=backend, precision=precision).stream().run(xs))


@pytest.mark.parametrize("kind, hidden, layers", MODELS)
def test_int8_dynamic_accuracy_drift_and_agreement(exported, kind, hidden, layers):
    path = exported(kind, hidden, layers)
    xs = _sequences(2, 1, STEPS)[0]  # ... and tested on another, state carried 300 steps
    ref = _run(path, "numpy", "float", xs)
    span = float(ref.max() - ref.min())
    outs = {b: _run(path, b, P, xs) for b in BACKENDS}
    for b, y in outs.items():
        err = np.abs(y - ref).reshape(STEPS, -1).max(axis=1)
        assert err.max() <= 0.03 * span, (b, err.max() / span)
        # no drift: the mean error over the last 100 steps at most 1.5x the first 100's
        assert err[-100:].mean() <= 1.5 * err[:100].mean(), (b, err[-100:].mean(), err[:100].mean())
    # The three backends run the same integer arithmetic (runtime/quant/int8_dynamic.py); they may
    # differ only where an activation lands on a rounding tie (float32 vs double, half-even
    # vs half-away) or XNNPACK quantizes a row in its own way: one 8-bit step of one input
    # element, x_scale * |w|, 1e-4..1e-3 here, carried through a contracting recurrence.
    # 0.5% of the output's range is 1/6 of the 3% int8-vs-float budget.
    for a, b in [("numpy", "onnxruntime"), ("numpy", "litert"), ("onnxruntime", "litert")]:
        assert np.abs(outs[a] - outs[b]).max() <= 2 * span / 255, (a, b)


def _onnx_weights(data: bytes) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(data).graph.initializer}


def _tflite_fc_weights(data: bytes) -> list[tuple[int, int, int]]:
    """(tensor type, number of scales, quantized_dimension) of every FULLY_CONNECTED weight."""
    m = tflite.Model.GetRootAsModel(data, 0)
    g = m.Subgraphs(0)
    found = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex()).BuiltinCode()
        if code == tflite.BuiltinOperator.FULLY_CONNECTED:
            w = g.Tensors(op.Inputs(1))
            q = w.Quantization()
            found.append(
                (w.Type(), q.ScaleLength() if q else 0, q.QuantizedDimension() if q else -1)
            )
    return found


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("hidden", [64, pytest.param(128, marks=pytest.mark.slow)])
def test_weights_are_int8_in_both_files(exported, kind, hidden):
    b = read_bundle(exported(kind, hidden, 2))
    plan = QuantPlan.from_json(b.files["quant.json"])
    onnx_w = _onnx_weights(b.model_bytes("onnx", P))
    for t in plan.quantized:
        assert onnx_w[f"{t.tensor}.int8"].dtype == np.int8
    # no float matrix left anywhere: only biases, scales and shape vectors
    assert all(a.dtype != np.float32 or a.ndim <= 1 for a in onnx_w.values())
    fcs = _tflite_fc_weights(b.model_bytes("tflite", P))
    assert len(fcs) == len(plan.quantized)
    assert all(t == tflite.TensorType.INT8 and n > 1 and d == 0 for t, n, d in fcs)
    sizes = {p: len(b.model_bytes(f, p)) for f in ("onnx",) for p in ("float", P)}
    tfl = {p: len(b.model_bytes("tflite", p)) for p in ("float", P)}
    # 4 bytes per weight become 1, but each output row keeps a float scale and a float bias
    # (8 bytes, 12% of a 64-wide int8 row) and the graph structure does not shrink: measured
    # 27.2-27.9% at hidden 128 and 30.4-32.1% at hidden 64 (two layers, 16 input features)
    limit = 0.30 if hidden >= 128 else 0.34
    assert sizes[P] <= limit * sizes["float"], sizes
    assert tfl[P] <= limit * tfl["float"], tfl


def test_onnxruntime_runs_integer_kernels(exported):
    import onnxruntime as ort

    data = read_bundle(exported("gru", 128, 2)).model_bytes("onnx", P)
    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = os.path.join(d, "optimized.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    integer = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger"}
    assert sum(op in integer for op in ops) == 5  # 2 linears per GRU layer, and the head
    assert not {"MatMul", "Gemm", "FusedMatMul", "FusedGemm"} & set(ops), ops


# --- export, CLI, inspect ------------------------------------------------------------------


def test_manifest_records_int8_dynamic_models_parity_and_budget(exported):
    b = read_bundle(exported("lstm", 64, 1))
    m = b.manifest
    assert {(f.backend, f.precision) for f in m.models} >= {("onnx", P), ("tflite", P)}
    assert "quant.json" in m.files and m.int8_scheme
    errs = [m.parity[f"{name}/{P}"]["max_rel_err"] for name in BACKENDS]
    assert 0 < max(errs) < 0.05
    assert m.budgets[P]["scaled_abs_err"] == pytest.approx(2 * max(errs) + 1e-3)
    assert "calibration" in json.loads(b.files["quant.json"])


def test_bad_calibration_fails_the_export(tmp_path):
    bad = [np.zeros((4, 1, 1, FEATURES + 1), np.float32)]
    with pytest.raises(InputError, match="calibration sequence 0"):
        export_bundle(
            _rnn("gru", 64, 1),
            torch.zeros(1, 1, FEATURES),
            tmp_path / "b",
            quantize=P,
            calibration=bad,
        )


def test_inspect_shows_the_plan(exported):
    from rnnedge.runtime.inspect import describe

    text = describe(read_bundle(exported("gru", 64, 1)))
    assert "quantization (int8-dynamic): 3 tensors integer, 0 left float" in text
    assert "int8 per-channel axis 0" in text and "zero point 0" in text


def test_cli_export_with_calibration(tmp_path):
    from rnnedge.cli import main

    spec = tmp_path / "m.py"
    spec.write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        f"    return torch.nn.GRU({FEATURES}, 64, batch_first=True)\n"
    )
    npz = tmp_path / "calib.npz"
    np.savez(npz, *_sequences(3, 2, 20))
    out = tmp_path / "cli.rnnedge"
    args = ["export", f"{spec}:make", "--step-shape", f"1,1,{FEATURES}", "--quantize", P]
    assert main([*args, "--calibration", str(npz), "-o", str(out)]) == 0
    doc = json.loads((out / "quant.json").read_text())
    assert doc["calibration"]["sequences"] == 2 and doc["calibration"]["steps"] == 40


# --- the real task -------------------------------------------------------------------------


def test_digits_accuracy_int8_dynamic_within_one_point_of_float(tmp_path):
    from rnnedge.demo import _digits, stream_accuracy, train

    x_train, y_train, x_test, y_test = _digits()
    model = train(x_train, y_train, lambda _m: None)
    calib = [img[:, None, None, :] for img in x_train[:200]]
    path = export_bundle(
        model, torch.zeros(1, 1, 8), tmp_path / "digits.rnnedge", quantize=P, calibration=calib
    )
    float_acc = stream_accuracy(rnnedge.load(path, backend="numpy"), x_test, y_test)
    for b in BACKENDS:
        acc = stream_accuracy(rnnedge.load(path, backend=b, precision=P), x_test, y_test)
        print(f"digits {b}: float {float_acc:.4f} int8-dynamic {acc:.4f}")
        assert abs(acc - float_acc) <= 0.01, (b, acc, float_acc)


def test_int8_dynamic_streams_are_independent_on_litert_and_refused_elsewhere(exported):
    from rnnedge.errors import StreamsError

    path = exported("gru", 64, 1)
    m = rnnedge.load(path, backend="litert", precision=P)
    rng = np.random.default_rng(4)
    many, singles = m.streams(4), [m.stream() for _ in range(4)]
    for _ in range(20):
        xs = [rng.standard_normal((1, 1, FEATURES)).astype(np.float32) * (k + 1) for k in range(4)]
        together = np.split(many.step(np.concatenate(xs)), 4)
        for k in range(4):
            np.testing.assert_array_equal(together[k], singles[k].step(xs[k]))
    for backend in ("onnxruntime", "numpy"):
        with pytest.raises(StreamsError, match="one shared scale"):
            rnnedge.load(path, backend=backend, precision=P).streams(2)
