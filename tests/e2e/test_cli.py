"""The CLI: export/inspect/run work; every user error is one line on stderr and exit code 1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import NET_PY

from rnnedge.cli import main

MODEL_PY = NET_PY + textwrap.dedent(
    """
    def make_cell():
        return nn.GRUCell(6, 10)

    def broken():
        raise ValueError("no such checkpoint")
    """
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "net.py").write_text(MODEL_PY)
    return d / "net.py"


@pytest.fixture(scope="module")
def exported(model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_out") / "net.rnnedge"
    assert main(["export", f"{model_file}:make", "--step-shape", "1,1,6", "-o", str(out)]) == 0
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnedge", *args], capture_output=True, text=True, timeout=300
    )


def _run_cli(bundle, xs: np.ndarray, tmp_path) -> np.ndarray:
    """`rnnedge run` on xs (written to a .npy); returns the outputs it wrote."""
    np.save(tmp_path / "xs.npy", xs)
    args = ["run", str(bundle), "--input", str(tmp_path / "xs.npy")]
    assert main([*args, "--output", str(tmp_path / "ys.npy")]) == 0
    return np.load(tmp_path / "ys.npy")


def _one_line_error(r: subprocess.CompletedProcess, pattern: str, code: int = 1) -> None:
    """One error line, no traceback, exit `code`: 1 for a failure, 2 for a usage error."""
    assert r.returncode == code, r.stderr
    # progress lines may precede it; the error itself is one line, the last, with no traceback
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == errors[0]
    assert pattern in errors[0], errors[0]


def test_export_inspect_run(exported, tmp_path, capsys) -> None:
    assert main(["inspect", str(exported)]) == 0
    text = capsys.readouterr().out
    assert "gru.h -> gru.h_out  [1, 1, 10]  zeros" in text
    assert "model.tflite" in text and "litert/float" in text
    xs = np.random.default_rng(0).standard_normal((7, 1, 1, 6)).astype(np.float32)
    ys = _run_cli(exported, xs, tmp_path)
    assert ys.shape == (7, 1, 1, 3)


def test_run_output_matches_pytorch(model_file, exported, tmp_path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("net_check", model_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    xs = np.random.default_rng(1).standard_normal((9, 1, 1, 6)).astype(np.float32)
    ys = _run_cli(exported, xs, tmp_path)
    with torch.no_grad():
        ref = mod.make().eval()(torch.from_numpy(xs[:, 0, 0][None])).numpy()[0]
    np.testing.assert_allclose(ys[:, 0, 0], ref, atol=1e-5)


def test_weights_file_is_loaded_safely(model_file, tmp_path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("net_w", model_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.save(mod.make().state_dict(), tmp_path / "w.pt")
    out = tmp_path / "w.rnnedge"
    args = [
        "export",
        f"{model_file}:make",
        "--weights",
        str(tmp_path / "w.pt"),
        "--step-shape",
        "1,1,6",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    # a pickle that would run code is refused by weights_only=True
    torch.save({"gru.weight_ih_l0": print}, tmp_path / "evil.pt")
    _one_line_error(
        _cli(
            "export",
            f"{model_file}:make",
            "--weights",
            str(tmp_path / "evil.pt"),
            "--step-shape",
            "1,1,6",
            "-o",
            str(tmp_path / "evil.rnnedge"),
        ),
        "cannot be read safely",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "nonexistent.py:make", "--step-shape", "1,1,6"],
            "MODEL file nonexistent.py does not exist",
        ),
        (["export", "{model}:nope", "--step-shape", "1,1,6"], "has no callable 'nope'"),
        (["export", "{model}", "--step-shape", "1,1,6"], "expected path/to/file.py:factory"),
        (
            ["export", "{model}:broken", "--step-shape", "1,1,6"],
            "broken() raised ValueError: no such checkpoint",
        ),
        (["export", "no_such_package.mod:make", "--step-shape", "1,1,6"], "cannot be imported"),
        (
            ["export", "{model}:make", "--step-shape", "1,1,7"],
            "torch.export could not trace the model",
        ),
        (
            ["export", "{model}:make", "--weights", "{missing}", "--step-shape", "1,1,6"],
            "does not exist",
        ),
        (
            ["export", "{model}:make", "--weights", "{garbage}", "--step-shape", "1,1,6"],
            "cannot be read safely",
        ),
        (
            ["export", "{model}:make", "--weights", "{wrong}", "--step-shape", "1,1,6"],
            "does not fit the model",
        ),
    ],
)
def test_export_errors_are_one_line(model_file, tmp_path, capsys, args, message) -> None:
    # in-process (a subprocess each cost a torch import; the console script's own one-line
    # errors are covered by test_corrupt_pt2_is_one_line and tests/e2e/test_first_hour_cli.py)
    (tmp_path / "garbage.pt").write_bytes(b"this is not a checkpoint")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "wrong.pt")
    fill = {
        "model": str(model_file),
        "missing": str(tmp_path / "none.pt"),
        "garbage": str(tmp_path / "garbage.pt"),
        "wrong": str(tmp_path / "wrong.pt"),
    }
    code = main([*(a.format(**fill) for a in args), "-o", str(tmp_path / "o.rnnedge")])
    err = capsys.readouterr().err
    _one_line_error(subprocess.CompletedProcess(args, code, "", err), message)
    assert not (tmp_path / "o.rnnedge").exists()


def test_run_errors_are_one_line(exported, tmp_path) -> None:
    np.save(tmp_path / "nan.npy", np.full((3, 1, 1, 6), np.nan, np.float32))
    _one_line_error(
        _cli("run", str(exported), "--input", str(tmp_path / "nan.npy")), "NaN or Inf", code=2
    )
    np.save(tmp_path / "shape.npy", np.zeros((3, 1, 7), np.float32))
    _one_line_error(
        _cli("run", str(exported), "--input", str(tmp_path / "shape.npy")),
        "shape [3, 1, 7] is neither (T, 1, 1, 6) nor (N, T, 1, 1, 6)",
        code=2,
    )
    (tmp_path / "bad.npy").write_bytes(b"nope")
    _one_line_error(
        _cli("run", str(exported), "--input", str(tmp_path / "bad.npy")),
        "not a numpy .npy or .npz file",
        code=2,
    )


def test_tampered_bundle_is_one_line(exported, tmp_path) -> None:
    copy = tmp_path / "t.rnnedge"
    shutil.copytree(exported, copy)
    (copy / "weights.npz").write_bytes((copy / "weights.npz").read_bytes()[:-3] + b"xyz")
    _one_line_error(_cli("inspect", str(copy)), "weights.npz: sha256 mismatch")
    r = _cli("--debug", "inspect", str(copy))
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_usage_error_exits_2() -> None:
    assert _cli("export").returncode == 2


def test_pt2_model_exports_and_matches_pytorch(tmp_path) -> None:
    from models import build

    model, example = build("lstm_2layer")
    torch.export.save(torch.export.export(model, (example,)), tmp_path / "m.pt2")
    out = tmp_path / "m.rnnedge"
    assert main(["export", str(tmp_path / "m.pt2"), "--step-shape", "1,1,8", "-o", str(out)]) == 0
    xs = np.random.default_rng(5).standard_normal((12, 1, 1, 8)).astype(np.float32)
    ys = _run_cli(out, xs, tmp_path)
    with torch.no_grad():
        ref = model(torch.from_numpy(xs[:, 0, 0][None])).numpy()[0]
    np.testing.assert_allclose(ys[:, 0, 0], ref, atol=1e-5)


def test_corrupt_pt2_is_one_line(tmp_path) -> None:
    (tmp_path / "bad.pt2").write_bytes(b"not a zip")
    r = _cli(
        "export",
        str(tmp_path / "bad.pt2"),
        "--step-shape",
        "1,1,8",
        "-o",
        str(tmp_path / "o.rnnedge"),
    )
    _one_line_error(r, "not a torch.export .pt2 archive")
