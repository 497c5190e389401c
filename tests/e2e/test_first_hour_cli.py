"""Issue 19, a new user's first hour, on the command line: every mistake is one line, found
before any work (exit code 2), failures of the work exit 1, and nothing but the answer and
one progress bar reaches the terminal. Each test names the item it pins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import NET_PY

from rnnedge.cli import main

MODEL_PY = NET_PY + textwrap.dedent(
    """
    class Cell(nn.Module):  # takes its state: needs --state-shape
        def __init__(self):
            super().__init__()
            self.cell = nn.GRUCell(6, 10)

        def forward(self, x, h):
            h = self.cell(x, h)
            return h, h

    def make_cell():
        return Cell()

    def broken():  # a factory the checks must never reach
        raise ValueError("the factory ran")
    """
)
RNNEDGE = Path(sys.executable).parent / "rnnedge"  # the console script, not python -m


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("first_hour")
    (d / "net.py").write_text(MODEL_PY)
    out = d / "net.rnnedge"
    assert main(["export", f"{d / 'net.py'}:make", "--step-shape", "1,1,6", "-o", str(out)]) == 0
    return d / "net.py", out


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if "error:" in line]


def _one_line(capsys, code: int, got: int, pattern: str) -> str:
    err = capsys.readouterr().err
    assert got == code, err
    errors = _errors(err)
    assert len(errors) == 1 and pattern in errors[0], err
    return err


def test_without_torch_commands_name_the_extra(net, tmp_path) -> None:
    # item 1: no traceback ending in ModuleNotFoundError, one line naming rnnedge[export]
    model, bundle = net
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        from rnnedge.cli import main
        for argv in (["export", "{model}:make", "--step-shape", "1,1,6", "-o", "{tmp_path}/o"],
                     ["demo", "--out", "{tmp_path}/demo"],
                     ["check", "{bundle}", "--model", "{model}:make"]):
            print(main(argv))
        import rnnedge
        try:
            rnnedge.export(object(), None, out="{tmp_path}/p")
        except rnnedge.RnnedgeError as e:
            print("api", e, file=sys.stderr)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["2", "2", "2"], r.stderr
    assert "Traceback" not in r.stderr
    errors = _errors(r.stderr)
    assert len(errors) == 3 and all("pip install 'rnnedge[export]'" in e for e in errors), errors
    assert "api rnnedge.export needs PyTorch" in r.stderr, r.stderr


def test_console_script_imports_a_package_in_the_working_directory(tmp_path) -> None:
    # item 3: `python -m rnnedge` has the cwd on sys.path, the console script did not
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "model.py").write_text(MODEL_PY)
    argv = [str(RNNEDGE), "-q", "export", "mypkg.model:make", "--step-shape", "1,1,6"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [*argv, "-o", "m.rnnedge"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.rnnedge" / "manifest.json").is_file()


def test_outputs_and_optional_packages_are_checked_before_the_work(
    net, tmp_path, capsys, monkeypatch
) -> None:
    # item 4: no PASS / "ran N steps" and then rc 1; a usage error (2) before anything runs
    _, bundle = net
    np.save(tmp_path / "xs.npy", np.zeros((5, 1, 1, 6), np.float32))
    nowhere = tmp_path / "no_such_dir"
    got = main(["check", str(bundle), "--json", str(nowhere / "r.json")])
    _one_line(capsys, 2, got, "directory")
    got = main(
        [
            "run",
            str(bundle),
            "--input",
            str(tmp_path / "xs.npy"),
            "--output",
            str(nowhere / "ys.npy"),
        ]
    )
    assert capsys.readouterr().out == ""  # nothing ran
    assert got == 2
    got = main(["check", str(bundle), "--precision", "int4"])
    _one_line(capsys, 2, got, "--precision int4")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # not installed
    got = main(["check", str(bundle), "--plot", str(tmp_path / "p.png")])
    err = _one_line(capsys, 2, got, "pip install 'rnnedge[plot]'")
    assert "checking" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--quantize", "int8"], "needs calibration sequences"),
        (["--quantize", "int8", "--calibration", "{few}"], "at least 4 calibration"),
        (["--quantize", "int8", "--calibration", "{ok}", "--percentile", "150"], "(50, 100]"),
        (["--calibration", "{ok}"], "only with --quantize int8"),
        (["--quantize", "int8-dynamic", "--percentile", "99"], "pass --calibration"),
        (["--quantize", "int8", "--calibration", "{shape}"], "is neither (T, 1, 1, 6)"),
        (["--quantize", "int8", "--calibration", "{nan}"], "NaN or Inf"),
    ],
)
def test_export_options_are_checked_before_the_model_is_loaded(
    net, tmp_path, capsys, extra, message
) -> None:
    # item 5: the factory raises if called, so a check made after loading would say so
    model, _ = net
    rng = np.random.default_rng(0)
    files = {
        "few": [rng.standard_normal((8, 6)) for _ in range(3)],
        "ok": [rng.standard_normal((8, 6)) for _ in range(4)],
        "shape": [rng.standard_normal((8, 7)) for _ in range(4)],
        "nan": [np.full((8, 6), np.nan) for _ in range(4)],
    }
    for name, seqs in files.items():
        np.savez(tmp_path / f"{name}.npz", *[s.astype(np.float32) for s in seqs])
    fill = {k: str(tmp_path / f"{k}.npz") for k in files}
    argv = ["export", f"{model}:broken", "--step-shape", "1,1,6", "-o", str(tmp_path / "o")]
    got = main(argv + [a.format(**fill) for a in extra])
    _one_line(capsys, 2, got, message)
    assert not (tmp_path / "o").exists()


def test_int8_export_one_shape_rule_one_bar_own_budgets(net, tmp_path, capsys) -> None:
    # item 6: ONE (N, T, F) array is N sequences, as np.stack(...) is in the Python API;
    # item 7: 20 sequences draw one bar, not a line each; item 17: each output and state
    # its own budget
    model, _ = net
    seqs = np.random.default_rng(1).standard_normal((20, 16, 6)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", seqs=seqs)
    out = tmp_path / "q.rnnedge"
    argv = ["export", f"{model}:make", "--step-shape", "1,1,6", "--quantize", "int8"]
    assert main([*argv, "--calibration", str(tmp_path / "calib.npz"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "calibration: sequence" in line]) <= 2, err
    budget = json.loads((out / "manifest.json").read_text())["budgets"]["int8"]
    own = {k.partition("@")[2]: v for k, v in budget.items() if "@" in k}
    assert set(own) == {"y", "gru.h_out"}, budget
    assert all(v <= budget["scaled_abs_err"] for v in own.values())
    assert min(own.values()) < budget["scaled_abs_err"]  # the output is not held to the state's
    assert main(["-q", "check", str(out)]) == 0
    assert capsys.readouterr().err == ""  # item 7: --quiet
    assert main(["check", str(out), "--quiet"]) == 0  # after the command too
    assert capsys.readouterr().err == ""


def test_run_takes_the_same_shapes_as_check(net, tmp_path, capsys) -> None:
    # item 6: (T, F) rows are one sequence for run as for check --data and --calibration;
    # items 12, 13: a .npy for --data, a one-array .npz for --input
    _, bundle = net
    xs = np.random.default_rng(2).standard_normal((9, 6)).astype(np.float32)
    np.save(tmp_path / "rows.npy", xs)
    np.save(tmp_path / "full.npy", xs.reshape(9, 1, 1, 6))
    np.savez(tmp_path / "one.npz", xs=xs)
    ys = {}
    for name in ("rows.npy", "full.npy", "one.npz"):
        argv = ["run", str(bundle), "--input", str(tmp_path / name)]
        assert main([*argv, "--output", str(tmp_path / f"{name}.y.npy")]) == 0
        ys[name] = np.load(tmp_path / f"{name}.y.npy")
    np.testing.assert_array_equal(ys["rows.npy"], ys["full.npy"])
    np.testing.assert_array_equal(ys["one.npz"], ys["full.npy"])
    assert main(["-q", "check", str(bundle), "--data", str(tmp_path / "rows.npy")]) == 0
    np.savez(tmp_path / "two.npz", a=xs, b=xs)
    got = main(["run", str(bundle), "--input", str(tmp_path / "two.npz")])
    _one_line(capsys, 2, got, "holds 2 arrays")
    (tmp_path / "text.npy").write_text("1 2 3\n")
    got = main(["run", str(bundle), "--input", str(tmp_path / "text.npy")])
    err = _one_line(capsys, 2, got, "not a numpy .npy or .npz file")
    assert "allow_pickle" not in err


def test_misleading_messages(net, tmp_path, capsys) -> None:
    # item 13: --weights given an .npz; a model taking its state without --state-shape;
    # exporting over a bundle
    model, bundle = net
    np.savez(tmp_path / "seqs.npz", x=np.zeros((3, 6), np.float32))
    argv = ["export", f"{model}:make", "--step-shape", "1,1,6", "-o", str(tmp_path / "w")]
    got = main([*argv, "--weights", str(tmp_path / "seqs.npz")])
    err = _one_line(capsys, 1, got, "is a numpy .npz archive, not a state_dict")
    assert "inline_container" not in err
    argv = ["export", f"{model}:make_cell", "--step-shape", "1,6", "-o", str(tmp_path / "c")]
    _one_line(capsys, 2, main(argv), "--state-shape")
    argv = ["export", f"{model}:broken", "--step-shape", "1,1,6", "-o", str(bundle)]
    _one_line(capsys, 2, main(argv), "pass --force")
    (tmp_path / "notes").mkdir()
    argv = ["export", f"{model}:broken", "--step-shape", "1,1,6", "-o", str(tmp_path / "notes")]
    _one_line(capsys, 2, main([*argv, "--force"]), "is not an rnnedge bundle")


def test_closed_stdout_exits_quietly(net) -> None:
    # item 12: `rnnedge inspect B | head -1` printed "error: Broken pipe" with rc 1
    _, bundle = net
    p = subprocess.Popen(
        [sys.executable, "-m", "rnnedge", "inspect", str(bundle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.close()  # the reader is gone before the first line is written
    _, err = p.communicate(timeout=120)
    assert err.decode() == ""
    assert p.returncode == 141


def test_litert_says_nothing_on_stderr(net, tmp_path) -> None:
    # item 15: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every command
    _, bundle = net
    np.save(tmp_path / "xs.npy", np.zeros((3, 1, 1, 6), np.float32))
    argv = [sys.executable, "-m", "rnnedge", "run", str(bundle), "--backend", "litert"]
    r = subprocess.run(
        [*argv, "--input", str(tmp_path / "xs.npy")], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
