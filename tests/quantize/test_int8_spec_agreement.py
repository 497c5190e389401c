"""Every int8 session computes the numpy integer spec (issue 16): onnxruntime's graph
rewrites that change int8 numerics are off in rnnedge's sessions, and `rnnedge check` fails
a session that drifts from the spec."""

from __future__ import annotations

import pytest
from conv_models import conv_lstm, noise_sequences

from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.backends import available_backends, ort_numerics
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.check.run import CheckConfig, run_check
from rnnedge.runtime.check.steps import steps_apart

pytestmark = pytest.mark.skipif(
    "onnxruntime" not in available_backends(), reason="needs onnxruntime (the [onnx] extra)"
)


# every tensor int8 whatever its error: this file holds the integer files to the spec
ALL_INT8 = {"max_err_pct": 100.0, "allow_drift": True}


@pytest.fixture(scope="module")
def conv_bundle(tmp_path_factory):
    # seed 1: onnxruntime's WeightBiasQuantization put it 3 steps from the spec
    model, example = conv_lstm(1)
    out = tmp_path_factory.mktemp("spec") / "conv_lstm.rnnedge"
    calib = noise_sequences(0, 4, 100)
    return read_bundle(
        export_bundle(model, example, out, quantize="int8", calibration=calib, int8_budget=ALL_INT8)
    )


def test_onnxruntime_int8_equals_the_spec_on_a_conv_front_end(conv_bundle):
    seqs = noise_sequences(5, 2, 150)
    for backend in ("onnxruntime", "litert"):
        if backend in available_backends():
            steps = steps_apart(conv_bundle, backend, sequences=seqs)
            assert max(steps.values()) <= 1, (backend, steps)


def test_check_fails_a_session_that_drifts_from_the_spec(conv_bundle, monkeypatch):
    cfg = CheckConfig(backends=("onnxruntime",), precisions=("int8",))
    assert run_check(conv_bundle, cfg).passed
    # an onnxruntime that rewrites the int8 graph (as before the fix): check must say so
    monkeypatch.setattr(ort_numerics, "INT_CONFIG", {})
    monkeypatch.setattr(ort_numerics, "INT_DISABLED_OPTIMIZERS", ())
    report = run_check(conv_bundle, cfg)
    (result,) = report.results
    assert result.status == "fail"
    assert "drifts from the numpy integer spec" in result.reason
