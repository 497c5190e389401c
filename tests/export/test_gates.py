"""The gates refuse a wrong bundle: with a gate set below any real error, export raises and
writes nothing (so a gate that could never trip would fail here)."""

from __future__ import annotations

import numpy as np
import pytest
from models import F_IN, build

from rnnedge.errors import ExportError
from rnnedge.export import gates, pipeline
from rnnedge.export.pipeline import export_bundle


def test_a_backend_beyond_the_float_parity_gate_refuses_the_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "FLOAT_GATE", -1.0)
    model, example = build("gru")
    with pytest.raises(ExportError, match=r"float disagrees with PyTorch on '.+' by .*\(gate -1\)"):
        export_bundle(model, example, tmp_path / "g.rnnedge")
    assert not (tmp_path / "g.rnnedge").exists()


def test_int8_beyond_the_integer_spec_gate_refuses_the_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(gates, "SPEC_GATE_STEPS", -1)
    model, example = build("gru")
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((20, 1, 1, F_IN)).astype(np.float32) for _ in range(4)]
    with pytest.raises(ExportError, match=r"int8 disagrees with the numpy integer spec on '.+'"):
        export_bundle(model, example, tmp_path / "q.rnnedge", quantize="int8", calibration=calib)
    assert not (tmp_path / "q.rnnedge").exists()
