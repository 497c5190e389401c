"""A new user's install (issue 19): the wheel of this checkout in a fresh virtual environment
with `[tflite]`, and another with `[onnx]`, no torch in either, runs inspect, check, run and
bench on a bundle, and refuses export in one line naming the extra. Also: the wheel builds
without packaging warnings and the sdist carries docs/, which the README links to.

Slow (two venvs from PyPI or pip's cache: about a minute each): `make test-slow`.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _sh(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=900, cwd=cwd
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    log = ""
    for what in ("wheel", "sdist"):  # one process each: setuptools keeps state between them
        code = f"import sys; from setuptools import build_meta as b; b.build_{what}(sys.argv[1])"
        r = _sh(sys.executable, "-c", code, out, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        log += r.stdout + r.stderr
    return out, log


def test_the_wheel_builds_quietly_and_the_sdist_has_the_docs(dists) -> None:
    out, log = dists
    assert "absent" not in log and "ignored" not in log, log  # e.g. a package not listed
    (sdist,) = out.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    assert any(n.endswith("docs/install.md") for n in names), names


@pytest.mark.parametrize("extra", ["tflite", "onnx"])
def test_fresh_venv_runs_the_runtime_and_refuses_export(extra, dists, zoo_bundle, tmp_path):
    out, _ = dists
    (wheel,) = out.glob("*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    pip = _sh(env / "bin" / "python", "-m", "pip", "install", "-q", f"{wheel}[{extra}]")
    assert pip.returncode == 0, pip.stderr
    assert _sh(env / "bin" / "python", "-c", "import torch").returncode != 0  # really absent
    rnnedge = env / "bin" / "rnnedge"
    bundle = zoo_bundle("gru")[0]
    np.save(tmp_path / "xs.npy", np.ones((20, 1, 1, 8), np.float32))

    r = _sh(rnnedge, "export", "m.py:make", "--step-shape", "1,1,8", "-o", "x.rnnedge")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == (
        "rnnedge export: error: rnnedge export needs PyTorch, which is not installed here: "
        "pip install 'rnnedge[export]'"
    )
    backend = {"tflite": "litert", "onnx": "onnxruntime"}[extra]
    for argv in (
        ["inspect", bundle],
        ["check", bundle],
        ["run", bundle, "--input", tmp_path / "xs.npy", "--backend", backend],
        [
            "-q",
            "bench",
            bundle,
            "--seconds",
            "0.05",
            "--steps",
            "50",
            "--paced-steps",
            "5",
            "--rounds",
            "1",
            "--warmup-steps",
            "5",
            "--no-results",
        ],
    ):
        r = _sh(rnnedge, *argv, cwd=tmp_path)
        assert r.returncode == 0, (argv, r.stderr)
        assert "Traceback" not in r.stderr and "INFO" not in r.stderr, r.stderr
    r = _sh(rnnedge, "check", bundle, "--backend", backend, cwd=tmp_path)
    assert f"{backend}" in r.stdout and "PASS" in r.stdout, r.stdout
