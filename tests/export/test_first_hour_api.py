"""Issue 19, a new user's first hour, in Python: short reprs, a fallback that is said, the
manifest checked against the files, strict JSON, and one clear line for each mistake. Each
test names the item it pins."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import rnnedge
from rnnedge.errors import (
    BackendError,
    BackendFallbackWarning,
    BundleError,
    ExportError,
    InputError,
)
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.manifest import Manifest


def _rehash(bundle, name: str) -> None:
    """Recomputes a tampered file's sha256 in manifest.json, as a careless tool would."""
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(doc))


def test_reprs_are_short(zoo_bundle) -> None:
    # item 8: print(model) dumped every weight (1.2 million characters on the demo)
    path = zoo_bundle("gru")[0]
    m = rnnedge.load(path, backend="numpy")
    for obj in (m, m.stream(), m.streams(2), m.bundle):
        text = repr(obj)
        assert len(text) < 200 and str(path) in text, text
    assert "numpy" in repr(m) and "rnn.h[1, 1, 16]" in repr(m)


def test_a_fallback_is_said_and_a_named_backend_never_falls_back(zoo_bundle, tmp_path) -> None:
    # item 9: a truncated model.tflite with its hash recomputed ran on onnxruntime, silently
    bundle = tmp_path / "t.rnnedge"
    shutil.copytree(zoo_bundle("gru")[0], bundle)
    for name in ("model.c", "model.tflite"):  # the two backends "auto" prefers to onnxruntime
        data = (bundle / name).read_bytes()
        (bundle / name).write_bytes(data[: len(data) // 2])
        _rehash(bundle, name)
    with pytest.warns(BackendFallbackWarning, match="native.*litert"):
        m = rnnedge.load(bundle)
    assert m.backend_name == "onnxruntime"
    assert [f.partition(":")[0] for f in m.fallbacks] == ["native", "litert"]
    with pytest.raises(BackendError, match="LiteRT could not load"):
        rnnedge.load(bundle, backend="litert")
    with pytest.raises(BackendError, match="native"):
        rnnedge.load(bundle, backend="native")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an intact bundle loads without a word
        assert rnnedge.load(zoo_bundle("gru")[0]).fallbacks == ()


def test_manifest_state_shapes_are_checked_against_the_files(zoo_bundle, tmp_path) -> None:
    # item 10: a state edited to a wrong shape passed inspect, check and run
    bundle = tmp_path / "s.rnnedge"
    shutil.copytree(zoo_bundle("gru")[0], bundle)
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["states"][0]["shape"] = [1, 1, 99]
    (bundle / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"state 'rnn.h' is declared \[1, 1, 99\]"):
        rnnedge.load(bundle)


def test_manifest_is_strict_json(zoo_bundle) -> None:
    # item 11: bare NaN in manifest.json
    m = rnnedge.load(zoo_bundle("gru")[0], backend="numpy").bundle.manifest
    bad = Manifest(**{**m.__dict__, "parity": {"numpy/float": {"max_rel_err": float("nan")}}})
    with pytest.raises(BundleError, match="not finite"):
        bad.to_json()


def test_nan_outputs_are_refused(tmp_path) -> None:
    # item 11: a model whose output is NaN exported with rc 0
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(ExportError, match="NaN or Inf on the golden inputs"):
        export_bundle(model, torch.zeros(1, 4), tmp_path / "nan.rnnedge")
    assert not (tmp_path / "nan.rnnedge").exists()


class KWS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(6, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class Explodes(KWS):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("captured: the checks came too late")


def test_the_class_instead_of_an_instance_is_one_line(tmp_path) -> None:
    # item 12: AttributeError from deep in capture
    with pytest.raises(ExportError, match="the class KWS"):
        rnnedge.export(KWS, torch.zeros(1, 1, 6), out=tmp_path / "k.rnnedge")


def test_calibration_is_checked_before_capture(tmp_path) -> None:
    # item 5: wrong calibration shapes and NaN were found only after emitting
    x = torch.zeros(1, 1, 6)
    good = [np.zeros((5, 6), np.float32)] * 4
    for calib, message in (
        ([np.zeros((5, 7), np.float32)] * 4, r"shape \[5, 7\] is not \(T, \[1, 1, 6\]\)"),
        ([np.full((5, 6), np.inf, np.float32)] * 4, "holds NaN or Inf"),
    ):
        with pytest.raises(InputError, match=message):
            export_bundle(Explodes(), x, tmp_path / "o", quantize="int8", calibration=calib)
    with pytest.raises(InputError, match="pass calibration too"):
        export_bundle(Explodes(), x, tmp_path / "o", percentile=99.0)
    with pytest.raises(ExportError, match="captured"):  # the same call, valid, gets there
        export_bundle(Explodes(), x, tmp_path / "o", quantize="int8", calibration=good)


def test_training_mode_is_said(tmp_path) -> None:
    # item 16: a model left in training mode was exported in eval mode without a word
    lines: list[str] = []
    model = KWS().train()
    export_bundle(model, torch.zeros(1, 1, 6), tmp_path / "t.rnnedge", progress=lines.append)
    assert any("training mode" in line for line in lines), lines
    assert model.training  # and the caller's model is left as it was


class MixesBatch(KWS):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gru(x)[0]
        return y - y.mean(dim=0, keepdim=True)  # couples the streams of a batch


def test_unbatched_reason_is_the_models_not_a_probes(tmp_path) -> None:
    # item 13: "the example has 2 along the time axis", about a probe the user never wrote
    path = export_bundle(MixesBatch(), torch.zeros(1, 1, 6), tmp_path / "m.rnnedge")
    why = rnnedge.load(path, backend="numpy").bundle.manifest.unbatched_why
    assert why and "time axis" not in why, why


def test_tflite_runtime_with_numpy_2_is_one_line(zoo_bundle, monkeypatch) -> None:
    # item 14: "<built-in method CreateWrapperFromBuffer ...> returned a result with an
    # exception set" on every file
    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = object
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    monkeypatch.setattr(np, "__version__", "2.1.0")
    with pytest.raises(BackendError, match=r"tflite-runtime needs numpy < 2.*rnnedge\[tflite\]"):
        rnnedge.load(zoo_bundle("gru")[0], backend="litert")


def test_an_outputs_own_budget_replaces_the_shared_one() -> None:
    # item 17: every output and state was held to 2x the worst error of any of them
    from rnnedge.runtime.check.metrics import budget_for

    budget = {"scaled_abs_err": 1.6, "scaled_abs_err@y": 0.05, "scaled_abs_err@h_out": 1.6}
    assert budget_for(budget, "y") == {"scaled_abs_err": 0.05}
    assert budget_for(budget, "h_out") == {"scaled_abs_err": 1.6}
    assert budget_for(budget, "other") == {"scaled_abs_err": 1.6}


def test_the_cli_says_a_fallback_on_stderr(zoo_bundle, tmp_path, capsys) -> None:
    # item 9: rc 0 and no word; now one warning line, and --backend litert fails instead
    from rnnedge.cli import main

    bundle = tmp_path / "t.rnnedge"
    shutil.copytree(zoo_bundle("gru")[0], bundle)
    (bundle / "model.c").write_bytes(b"int truncated")  # native is the backend auto prefers
    _rehash(bundle, "model.c")
    np.save(tmp_path / "xs.npy", np.zeros((3, 1, 1, 8), np.float32))
    assert main(["run", str(bundle), "--input", str(tmp_path / "xs.npy")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("rnnedge run: warning:") and "native" in err[0]
    argv = ["run", str(bundle), "--input", str(tmp_path / "xs.npy"), "--backend", "native"]
    assert main(argv) == 1
