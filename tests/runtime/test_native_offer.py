"""A bundle without C (an older rnnedge's, or a model with an op that has no C kernel) does
not offer the native backend: "auto" passes it over without a word, as an interpreter that is
not installed, export's gate and `rnnedge check` skip it, and only `backend="native"` says
why. A bundle whose C is there but broken is a fallback that IS said."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest

import rnnedge
from rnnedge.errors import BackendError, BackendFallbackWarning
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.check.run import CheckConfig, run_check


def _without_c(src, dst):
    shutil.copytree(src, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    for name in ("model.c", "model.h"):
        (dst / name).unlink()
        del doc["files"][name]
    (dst / "manifest.json").write_text(json.dumps(doc))
    return dst


def test_a_bundle_without_c_loads_elsewhere_without_a_word(zoo_bundle, tmp_path) -> None:
    bundle = _without_c(zoo_bundle("gru")[0], tmp_path / "old.rnnedge")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        m = rnnedge.load(bundle)
    assert m.backend_name != "native" and m.fallbacks == ()
    with pytest.raises(BackendError, match=r"has no model\.c for the native backend"):
        rnnedge.load(bundle, backend="native")
    report = run_check(read_bundle(bundle), CheckConfig(precisions=("float",)))
    native = [r for r in report.results if r.backend == "native"]
    assert native and all(r.status == "skipped" for r in native), native


def test_broken_c_is_a_fallback_that_is_said(zoo_bundle, tmp_path) -> None:
    bundle = tmp_path / "broken.rnnedge"
    shutil.copytree(zoo_bundle("gru")[0], bundle)
    (bundle / "model.c").write_text("int broken(")
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["files"]["model.c"] = hashlib.sha256((bundle / "model.c").read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(doc))
    with pytest.warns(BackendFallbackWarning, match="native"):
        m = rnnedge.load(bundle)
    assert m.backend_name != "native"
    xs = np.zeros((3, *m.step_input.shape), np.float32)
    assert np.isfinite(m.stream().run(xs)).all()
