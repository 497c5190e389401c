"""Full int8 end to end (issue 3): export_bundle(quantize="int8") -> the numpy integer spec, the
TFLite and the ONNX int8 files, each run as a deployed stream (state carried), against PyTorch
float and against each other."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch
from models import rnn_with_head

import rnnedge
from rnnedge.cli import main
from rnnedge.errors import CalibrationRangeWarning, ExportError, InputError
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.backends import BACKENDS
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.check.steps import steps_apart
from rnnedge.runtime.quant.plan import read_plan

P = "int8"

FEATURES = 16
STEPS = 1000


def _sequences(seed: int, count: int, steps: int, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (scale * rng.standard_normal((steps, 1, 1, FEATURES))).astype(np.float32)
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(kind, hidden, layers) -> (bundle path, torch model), each exported once."""
    cache: dict[tuple, tuple] = {}

    def get(kind: str, hidden: int, layers: int):
        key = (kind, hidden, layers)
        if key not in cache:
            model = rnn_with_head(kind, hidden, layers, FEATURES)
            out = tmp_path_factory.mktemp("int8") / f"{kind}{hidden}x{layers}.rnnedge"
            path = export_bundle(
                model,
                torch.zeros(1, 1, FEATURES),
                out,
                quantize=P,
                calibration=_sequences(1, 20, 500),  # calibrated on one set ...
                # every tensor int8 whatever the error: these tests hold the integer kernels
                # (mixed precision would leave the worst float: test_int8_mixed.py)
                int8_budget={"max_err_pct": 100.0, "allow_drift": True},
            )
            cache[key] = (path, model)
        return cache[key]

    return get


def _torch_outputs(model, xs: np.ndarray) -> np.ndarray:
    with torch.no_grad():  # the whole sequence at once: PyTorch's own recurrence
        return model(torch.from_numpy(xs.reshape(1, len(xs), FEATURES))).numpy()[0]


def _stream_outputs(path, backend: str, xs: np.ndarray) -> np.ndarray:
    stream = rnnedge.load(path, backend=backend, precision=P).stream()
    return np.asarray(stream.run(xs)).reshape(len(xs), -1)


def _error_bound(hidden: int) -> float:
    """Max error as a share of the output range, for the all-int8 plan (no mixed-precision
    fallback here). Every int8 unit of h is off by up to half a step and the head sums H of
    them: independent rounding grows as sqrt(H), so the 3% that holds to H = 128 becomes 4.2%
    at H = 256. Measured 2026-12-07, worst of 1,000 held-out steps, identical on every
    backend, no drift: GRU 1.4-2.4% but 3.75% at 256 x 1; LSTM 1.2-2.2%; RNN 1.1-1.9%."""
    return 0.03 * max(1.0, (hidden / 128) ** 0.5)


def _check_accuracy(path, model, kind: str, hidden: int) -> None:
    xs = _sequences(2, 1, STEPS)[0]  # ... tested on another
    ref = _torch_outputs(model, xs).reshape(STEPS, -1)
    span = float(ref.max() - ref.min())
    for b in BACKENDS:
        got = _stream_outputs(path, b, xs)
        err = np.abs(got - ref).max(axis=1)
        print(f"{kind} {b}: max {err.max() / span:.4f} of range, "
              f"late/early {err[-100:].mean() / err[:100].mean():.2f}")  # fmt: skip
        assert err.max() <= _error_bound(hidden) * span, (b, err.max() / span)
        # no drift: the mean error over steps 900-1000 at most 1.5x that over steps 1-100
        assert err[-100:].mean() <= 1.5 * err[:100].mean(), (b, err[-100:].mean(), err[:100].mean())


def _check_agreement(path, kind: str, every_pair: bool) -> None:
    """Every backend computes the same step as the numpy integer spec (with `every_pair`: as
    every other backend) within 2 quantisation steps of every output and state, over 1,000
    steps (both fed one backend's state, carried). The default run checks against the spec
    only: it defines the int8 numbers, and the pairs between the others take as long again."""
    bundle, xs = read_bundle(path), _sequences(2, 1, STEPS)
    for a in BACKENDS:
        for b in BACKENDS:
            if a < b and (every_pair or "numpy" in (a, b)):
                steps = steps_apart(bundle, b, reference=a, sequences=xs)
                print(f"  {kind} {a} vs {b}: {steps}")
                assert max(steps.values()) <= 2 + 1e-3, (a, b, steps)


# the default run: every kind at hidden 64, and one stacked 128 (the rest under -m slow)
MODELS = [*((k, 64, 1) for k in ("gru", "lstm", "rnn")), ("lstm", 128, 2)]
SLOW_MODELS = [
    (k, h, n)
    for k in ("gru", "lstm", "rnn")
    for h in (64, 128, 256)
    for n in (1, 2)
    if (k, h, n) not in MODELS
]


@pytest.mark.parametrize("kind, hidden, layers", MODELS)
def test_int8_every_backend_accurate_without_drift_and_agreeing(exported, kind, hidden, layers):
    path, model = exported(kind, hidden, layers)
    _check_accuracy(path, model, kind, hidden)
    _check_agreement(path, kind, every_pair=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind, hidden, layers", MODELS)
def test_int8_every_pair_of_backends_agrees(exported, kind, hidden, layers):
    _check_agreement(exported(kind, hidden, layers)[0], kind, every_pair=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind, hidden, layers", SLOW_MODELS)
def test_int8_every_backend_accurate_slow_sizes(exported, kind, hidden, layers):
    path, model = exported(kind, hidden, layers)
    _check_accuracy(path, model, kind, hidden)
    _check_agreement(path, kind, every_pair=True)


def test_int8_bundle_files_plan_and_inspect(exported, capsys):
    path, _ = exported("lstm", 128, 2)
    bundle = read_bundle(path)
    plan = read_plan(bundle.files, str(path))
    assert plan.scheme == "int8"
    # the LSTM cell, and only the cell, stays float, each entry saying why
    assert {t.tensor for t in plan.left_float} >= {"rnn.c", "rnn.c_out"}
    assert all("LSTM cell" in t.why for t in plan.left_float)
    assert not [t for t in plan.tensors if t.dtype == "int16"]
    for kind in ("onnx", "tflite"):
        ratio = len(bundle.files[f"model.int8.{kind}"]) / len(bundle.files[f"model.{kind}"])
        print(f"{kind}: int8 / float size {ratio:.3f}")
        assert ratio <= 0.30, (kind, ratio)
    assert {(m.backend, m.precision) for m in bundle.manifest.models} >= {
        ("onnx", P),
        ("tflite", P),
    }
    for key in ("litert/int8", "onnxruntime/int8"):
        assert bundle.manifest.parity[key]["max_spec_steps"] <= 2
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "quantization (int8):" in text
    assert re.search(r"rnn\.l0\.ifo\s+int8 scale 0\.00390625 zero point -128, fixed", text)
    assert re.search(r"rnn\.c_out\s+float32: LSTM cell state kept float", text)


# int8 / float file size at hidden 64 (16 features + Linear(64, 8)), ONNX / TFLite, measured
# 2026-12-07: 0.345 / 0.409 (GRU) and 0.327 / 0.378 (LSTM) before issue 16's cuts, 0.335 /
# 0.373 and 0.320 / 0.357 after the first ones, 0.299 / 0.373 and 0.289 / 0.356 now
# (docs/int8.md, "File sizes"). TFLite stays above 30%: each int8 row of K weights carries a
# float32 scale, an int32 bias and an int64 zero point (the schema's types; LiteRT wants as
# many zero points as scales), 16 bytes against the float row's 4K + 4, so at K = 16 the
# weights and rows alone are 0.30 of the float file.
SIZE_CEILINGS = {"gru": {"onnx": 0.300, "tflite": 0.373}, "lstm": {"onnx": 0.290, "tflite": 0.357}}


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_int8_file_size_at_hidden_64(exported, kind):
    """Sizes are deterministic: zero-point and scale tables, bias scales, repeated int32
    operands and node names that no kernel reads stay out of the int8 files."""
    bundle = read_bundle(exported(kind, 64, 1)[0])
    for fmt, ceiling in SIZE_CEILINGS[kind].items():
        ratio = len(bundle.files[f"model.int8.{fmt}"]) / len(bundle.files[f"model.{fmt}"])
        print(f"{kind} 64 {fmt}: int8 / float size {ratio:.3f}")
        assert ratio <= ceiling, (kind, fmt, ratio)


def test_int8_streams_are_independent_on_every_backend(exported):
    path, _ = exported("gru", 64, 1)
    rng = np.random.default_rng(4)
    for b in BACKENDS:
        m = rnnedge.load(path, backend=b, precision=P)
        many, singles = m.streams(3), [m.stream() for _ in range(3)]
        for _ in range(20):
            xs = rng.standard_normal((3, 1, FEATURES)).astype(np.float32)
            got = many.step(xs)
            for i, s in enumerate(singles):
                np.testing.assert_array_equal(got[i : i + 1], s.step(xs[i : i + 1]), err_msg=b)


# --- calibration data ----------------------------------------------------------------------


def _export(tmp_path, calibration, **kw):
    model = rnn_with_head("gru", 16, 1, FEATURES)
    return export_bundle(
        model, torch.zeros(1, 1, FEATURES), tmp_path / "m.rnnedge", quantize=P,
        calibration=calibration, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    "calibration, match",
    [
        (None, "needs calibration sequences"),
        ([], "no sequences given"),
        (_sequences(0, 2, 50), "at least 4 calibration sequences, got 2"),
        ([np.zeros((50, 1, 1, FEATURES + 1), np.float32)] * 4, r"calibration sequence 0: shape"),
        ([*_sequences(0, 3, 50), np.full((50, 1, 1, FEATURES), np.nan, np.float32)],
         "calibration sequence 3: holds NaN or Inf"),
        ([np.full((5, 1, 1, FEATURES), np.inf, np.float32)] * 4, "holds NaN or Inf"),
        ([np.zeros((0, 1, 1, FEATURES), np.float32)] * 4, r"with T >= 1"),
    ],
)  # fmt: skip
def test_bad_calibration_data_is_a_clear_error(tmp_path, calibration, match):
    with pytest.raises((ExportError, InputError), match=match):
        _export(tmp_path, calibration)
    assert not (tmp_path / "m.rnnedge").exists()


def test_golden_data_beyond_the_calibrated_range_is_reported(tmp_path):
    said: list[str] = []
    with pytest.warns(CalibrationRangeWarning, match=r"tensor '[^']+' reaches .* by \d+%"):
        path = _export(
            tmp_path, _sequences(0, 4, 50), golden=_sequences(1, 2, 20, scale=4.0),
            progress=said.append,
        )  # fmt: skip
    warned = [m for m in said if "warning: tensor" in m]
    assert warned, said
    doc = json.loads((path / "quant.json").read_text())
    assert all(v > 0.10 for v in doc["golden_beyond_calibration"].values())
    # quant.json is the plan written whole: it reads back with its calibration record and
    # golden overruns, and writes the same bytes again
    plan = read_plan(read_bundle(path).files, str(path))
    assert plan.golden_beyond_calibration == doc["golden_beyond_calibration"]
    assert plan.calibration is not None and plan.calibration.to_json() == doc["calibration"]
    assert plan.to_json() == (path / "quant.json").read_text()
    # golden data like the calibration data: nothing to report
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationRangeWarning)
        _export(tmp_path, _sequences(0, 4, 50), golden=_sequences(0, 2, 20))


def test_cli_exports_int8_with_percentile_calibration(tmp_path):
    spec = tmp_path / "m.py"
    spec.write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        f"    return torch.nn.GRU({FEATURES}, 32, batch_first=True)\n"
    )
    npz = tmp_path / "calib.npz"
    np.savez(npz, *_sequences(3, 4, 30))
    out = tmp_path / "cli.rnnedge"
    args = ["export", f"{spec}:make", "--step-shape", f"1,1,{FEATURES}", "--quantize", P]
    assert main([*args, "--calibration", str(npz), "--percentile", "99.9", "-o", str(out)]) == 0
    doc = json.loads((out / "quant.json").read_text())
    assert doc["scheme"] == "int8" and doc["calibration"]["method"] == "percentile 99.9"
    assert main([*args, "-o", str(tmp_path / "no.rnnedge")]) == 2  # no --calibration: usage


# --- the real task -------------------------------------------------------------------------


def test_digits_accuracy_int8_within_one_point_of_float(tmp_path):
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
        print(f"digits {b}: float {float_acc:.4f} int8 {acc:.4f}")
        assert abs(acc - float_acc) <= 0.01, (b, acc, float_acc)
