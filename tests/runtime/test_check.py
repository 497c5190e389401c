"""`rnnedge check`: healthy bundles pass, corrupted ones fail by name, reports are well formed,
and it runs without torch."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import rnnedge
from rnnedge.cli import main
from rnnedge.runtime.backends import (  # the dev extras install all three
    BACKENDS,
    available_backends,
)
from rnnedge.runtime.bundle import read_bundle, sha256
from rnnedge.runtime.check.data import load_data
from rnnedge.runtime.check.report import to_json
from rnnedge.runtime.check.run import CheckConfig, run_check
from rnnedge.runtime.check.schema import SCHEMA
from rnnedge.runtime.manifest import Task

ROOT = Path(__file__).resolve().parents[2]
DELTA = 1e-3  # what the corruption adds to one weight


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(bundle: Path, **fields) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    m.update(fields)
    (bundle / "manifest.json").write_text(json.dumps(m))


def _corrupt(bundle: Path, file: str, const: str) -> None:
    """Adds DELTA to element 0 of weight `const` inside `file`, then fixes the file's sha256 in
    manifest.json so the bundle still loads: its numbers are wrong, nothing else is."""
    w = read_bundle(bundle).graph.constants[const]
    data = (bundle / file).read_bytes()
    bad = w.copy()
    bad.flat[0] += DELTA
    if file.endswith(".onnx"):
        import onnx
        from onnx import numpy_helper

        model = onnx.load_from_string(data)
        (init,) = [i for i in model.graph.initializer if i.name == const]
        init.CopyFrom(numpy_helper.from_array(bad, const))
        data = model.SerializeToString()
    else:  # TFLite keeps each weight as raw little-endian bytes in a buffer
        assert data.count(w.tobytes()) == 1
        data = data.replace(w.tobytes(), bad.tobytes())
    (bundle / file).write_bytes(data)
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"][file] = sha256(data)
    (bundle / "manifest.json").write_text(json.dumps(m))


def _results(report: dict) -> dict[tuple[str, str], dict]:
    return {(r["backend"], r["precision"]): r for r in report["results"]}


def _junit_cases(path: Path) -> dict[tuple[str, str], ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}


def test_healthy_bundle_passes_with_valid_json_and_junit(zoo_bundle, tmp_path, capsys) -> None:
    path = zoo_bundle("gru")[0]
    j, x = tmp_path / "r.json", tmp_path / "r.xml"
    assert main(["check", str(path), "--json", str(j), "--junit", str(x)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out
    report = json.loads(j.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["passed"] and report["reference"] == "golden"
    assert report["inputs"] == {
        "source": "golden",
        "path": None,
        "sequences": 3,
        "steps": 192,
        "looped": False,
    }
    for b in BACKENDS:
        r = _results(report)[(b, "float")]
        assert r["status"] == "pass" and r["budget"] == {"scaled_abs_err": 1e-5}
        assert [(o["name"], o["kind"]) for o in r["outputs"]] == [
            ("y", "output"),
            ("rnn.h_out", "state"),
        ]
        for o in r["outputs"]:
            assert 0 <= o["max_abs_err"] <= 1e-5 and o["cosine"] > 0.999999
            # at most 20 windows: 64 steps make 16 windows of ceil(64 / 20) = 4 steps
            assert o["drift"]["window_steps"] == 4 and len(o["drift"]["window_max_abs_err"]) == 16
    cases = _junit_cases(x)
    assert set(cases) == {
        (f"rnnedge.check.gru.{b}.float", o) for b in BACKENDS for o in ("y", "rnn.h_out")
    }
    assert not any(list(c) for c in cases.values())  # no failure, error or skipped child


@pytest.mark.parametrize(
    "file, const, broken",
    [
        ("model.onnx", "linear.b", {"y"}),
        ("model.tflite", "linear.b", {"y"}),
        ("model.tflite", "rnn.l0.gates_h.b", {"y", "rnn.h_out"}),  # a recurrent weight: state too
    ],
)
def test_corrupted_model_file_fails_naming_backend_and_output(
    zoo_bundle, tmp_path, capsys, file, const, broken
) -> None:
    bundle = _copy(zoo_bundle("gru")[0], tmp_path / "gru.rnnedge")
    _corrupt(bundle, file, const)
    j, x = tmp_path / "r.json", tmp_path / "r.xml"
    assert main(["check", str(bundle), "--json", str(j), "--junit", str(x)]) == 1
    bad_backend = {"model.onnx": "onnxruntime", "model.tflite": "litert"}[file]
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(bad_backend) and "FAIL" in line]
    assert {line.split()[2] for line in rows} == broken
    (verdict,) = [line for line in out.splitlines() if line.startswith("FAIL (")]
    assert f"{bad_backend}/float (y: scaled_abs_err" in verdict
    report = json.loads(j.read_text())
    jsonschema.validate(report, SCHEMA)
    results = _results(report)
    assert not report["passed"] and results[(bad_backend, "float")]["status"] == "fail"
    assert all(r["status"] == "pass" for k, r in results.items() if k[0] != bad_backend)
    outs = {o["name"]: o for o in results[(bad_backend, "float")]["outputs"]}
    assert {n for n, o in outs.items() if not o["passed"]} == broken
    if const == "linear.b":  # a bias shifts one output element by exactly DELTA at every step
        assert math.isclose(outs["y"]["max_abs_err"], DELTA, rel_tol=1e-3)
    cases = _junit_cases(x)
    failed = {k for k, c in cases.items() if c.find("failure") is not None}
    assert failed == {(f"rnnedge.check.gru.{bad_backend}.float", o) for o in broken}
    assert "scaled_abs_err" in cases[(f"rnnedge.check.gru.{bad_backend}.float", "y")].find(
        "failure"
    ).get("message")


def test_budget_override_and_steps_with_numpy_reference(zoo_bundle, tmp_path, capsys) -> None:
    path = str(zoo_bundle("lstm_2layer")[0])
    # float errors are ~1e-7: a 1e-9 budget must fail every backend that is checked
    assert main(["check", path, "--budget", "1e-9", "--backend", "onnxruntime"]) == 1
    j = tmp_path / "r.json"
    assert main(["check", path, "--steps", "500", "--budget", "float=1e-4", "--json", str(j)]) == 0
    report = json.loads(j.read_text())
    jsonschema.validate(report, SCHEMA)
    assert report["reference"] == "numpy" and report["inputs"]["looped"]
    assert report["inputs"]["steps"] == 500 and report["inputs"]["sequences"] == 1
    results = _results(report)
    assert results[("numpy", "float")]["status"] == "skipped"  # it is the reference itself
    for b in ("litert", "onnxruntime"):
        assert results[(b, "float")]["budget"] == {"scaled_abs_err": 1e-4}
        for o in results[(b, "float")]["outputs"]:
            assert o["drift"]["window_steps"] == 25 and len(o["drift"]["window_max_abs_err"]) == 20
    capsys.readouterr()


@pytest.mark.parametrize(
    "args",
    [
        ["--budget", "float=abc"],
        ["--budget", "-1"],
        ["--backend", "tpu"],
        ["--weights", "w.pt"],
        ["--data", "/nonexistent/seqs.npz"],
        ["--steps", "0"],
    ],
)
def test_usage_errors_exit_2(zoo_bundle, args, capsys) -> None:
    path = str(zoo_bundle("gru")[0])
    try:
        code = main(["check", path, *args])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    assert code == 2
    assert capsys.readouterr().err.strip()


def test_user_data_with_labels_and_a_classification_task(zoo_bundle, tmp_path) -> None:
    bundle = _copy(zoo_bundle("gru")[0], tmp_path / "gru.rnnedge")
    _edit_manifest(bundle, task={"kind": "classification"})  # manifest.json is not hashed
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((6, 10, 8)).astype(np.float32)  # 6 sequences of 10 steps of 8
    labels = rng.integers(0, 4, 6)
    np.savez(tmp_path / "seqs.npz", x=xs, x_labels=labels, one=xs[0, :5])
    data = load_data(tmp_path / "seqs.npz", (1, 1, 8))
    assert [len(s) for s in data.inputs] == [10] * 6 + [5]
    report = run_check(read_bundle(bundle), CheckConfig(), data=data)
    assert report.passed and report.reference == "numpy" and report.steps == 65
    # the expected accuracy, from the runtime's own stream: the last step's argmax vs label
    stream = rnnedge.load(bundle, backend="numpy").stream()
    hits = []
    for seq, lab in zip(xs, labels):
        stream.reset()
        hits.append(int(np.argmax(stream.run(seq[:, None, None, :])[-1]) == lab))
    for r in report.results:
        if r.status == "skipped":
            continue
        (y,) = [m for m in r.outputs if m.name == "y"]
        assert y.task["argmax_agreement"] == 1.0
        assert y.task["accuracy"] == pytest.approx(np.mean(hits))
        assert y.task["reference_accuracy"] == pytest.approx(np.mean(hits))
    jsonschema.validate(to_json(report), SCHEMA)


def test_model_reference_recomputed_with_pytorch(zoo_bundle, tmp_path, capsys) -> None:
    spec = tmp_path / "zoo.py"
    spec.write_text(
        textwrap.dedent(
            f"""
            import sys, torch
            sys.path.insert(0, {str(ROOT / "tests")!r})
            from models import build

            def same():
                return build("cells")[0]

            def retrained():  # the same architecture with other weights
                model = build("cells")[0]
                torch.manual_seed(99)
                model.head.reset_parameters()
                return model
            """
        )
    )
    path, j = str(zoo_bundle("cells")[0]), tmp_path / "r.json"
    assert main(["check", path, "--model", f"{spec}:same", "--json", str(j)]) == 0
    assert json.loads(j.read_text())["reference"] == "torch"
    # the bundle no longer computes what the user's current weights compute: check says so
    assert main(["check", path, "--model", f"{spec}:retrained", "--json", str(j)]) == 1
    results = _results(json.loads(j.read_text()))
    for b in BACKENDS:
        outs = {o["name"]: o["passed"] for o in results[(b, "float")]["outputs"]}
        assert outs == {"y": False, "h_out": True, "c_out": True, "g_out": True}
    capsys.readouterr()


def test_check_runs_without_torch(zoo_bundle, tmp_path) -> None:
    path, j = zoo_bundle("two_rnns")[0], tmp_path / "r.json"
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "from rnnedge.cli import main\n"
        f"assert main(['check', {str(path)!r}]) == 0\n"  # golden.npz as the reference
        f"rc = main(['check', {str(path)!r}, '--steps', '300', '--json', {str(j)!r}])\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads(j.read_text())
    want = {"litert", "onnxruntime"} | ({"native"} & set(available_backends()))
    assert report["passed"] and {k[0] for k, v in _results(report).items() if v["outputs"]} == want


def test_plot_is_a_png_with_one_panel_per_output(zoo_bundle, tmp_path) -> None:
    import matplotlib.image

    from rnnedge.runtime.check.plot import write_plot

    report = run_check(read_bundle(zoo_bundle("two_rnns")[0]), CheckConfig(steps=300))
    write_plot(report, tmp_path / "p.png")
    img = matplotlib.image.imread(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.shape[0] > img.shape[1]  # 4 stacked panels (y and 3 states): taller than wide


def test_manifest_budgets_written_and_old_bundles_read_with_defaults(zoo_bundle, tmp_path) -> None:
    path = zoo_bundle("gru")[0]
    written = json.loads((path / "manifest.json").read_text())
    assert written["budgets"] == {"float": {"scaled_abs_err": 1e-5}} and written["task"] is None
    old = _copy(path, tmp_path / "old.rnnedge")
    m = json.loads((old / "manifest.json").read_text())
    del m["budgets"], m["task"]
    (old / "manifest.json").write_text(json.dumps(m))
    manifest = read_bundle(old).manifest
    assert manifest.budgets == {"float": {"scaled_abs_err": 1e-5}} and manifest.task is None
    _edit_manifest(old, task={"kind": "regression", "output": "y"})
    assert read_bundle(old).manifest.task == Task(kind="regression", output="y")


def test_docs_show_the_schema_the_code_validates_with() -> None:
    doc = (ROOT / "docs" / "check.md").read_text()
    block = re.search(r"<!-- schema -->\s*```json\n(.*?)```", doc, re.S)
    assert block, "docs/check.md lost its schema block"
    assert json.loads(block.group(1)) == SCHEMA
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.slow
def test_float_demo_bundle_does_not_drift_over_10000_steps(tmp_path) -> None:
    """The demo's digits GRU, float: 10,000 steps with the state carried stay within budget and
    the error does not grow. (The int8 version of this test waits for int8 bundles.)"""
    import torch

    from rnnedge.demo import _digits, train
    from rnnedge.export.pipeline import export_bundle

    x_train, y_train, x_test, y_test = _digits()
    model = train(x_train, y_train, lambda _m: None)
    path = export_bundle(
        model,
        torch.zeros(1, 1, 8),
        tmp_path / "digits.rnnedge",
        golden=x_test[:4],
        task={"kind": "classification"},
    )
    j = tmp_path / "r.json"
    assert main(["check", str(path), "--steps", "10000", "--json", str(j)]) == 0
    report = json.loads(j.read_text())
    jsonschema.validate(report, SCHEMA)
    for r in report["results"]:
        for o in r["outputs"]:
            assert o["scaled_abs_err"] <= 1e-5
            windows = o["drift"]["window_max_abs_err"]
            assert max(windows[-5:]) <= 4 * max(max(windows[:5]), 1e-7), (r["backend"], o)
            if o["task"]:
                assert o["task"]["argmax_agreement"] == 1.0
    # the user's own data: the test images, labelled, each streamed from a fresh state
    np.savez(tmp_path / "test.npz", digits=x_test, digits_labels=y_test)
    assert main(["check", str(path), "--data", str(tmp_path / "test.npz"), "--json", str(j)]) == 0
    with torch.no_grad():
        torch_acc = (model(torch.from_numpy(x_test))[:, -1].argmax(-1).numpy() == y_test).mean()
    for r in json.loads(j.read_text())["results"]:
        for o in r["outputs"]:
            if o["task"]:
                assert o["task"]["accuracy"] == pytest.approx(torch_acc)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8-dynamic", "int8"])
def test_int8_demo_bundle_does_not_drift_over_10000_steps(tmp_path, precision) -> None:
    """The demo's digits GRU in int8 and int8-dynamic: 10,000 steps with the state carried
    pass check's budget on every backend and the error does not grow."""
    import torch

    from rnnedge.demo import _digits, train
    from rnnedge.export.pipeline import export_bundle

    x_train, y_train, x_test, _ = _digits()
    model = train(x_train, y_train, lambda _m: None)
    calibration = [img[:, None, None, :] for img in x_train[:64]]  # (T=8, 1, 1, 8) each
    path = export_bundle(
        model,
        torch.zeros(1, 1, 8),
        tmp_path / "digits.rnnedge",
        quantize=precision,
        calibration=calibration,
        golden=x_test[:4],
        task={"kind": "classification"},
    )
    j = tmp_path / "r.json"
    assert main(["check", str(path), "--steps", "10000", "--json", str(j)]) == 0
    results = [r for r in json.loads(j.read_text())["results"] if r["precision"] == precision]
    assert {r["backend"] for r in results} == {"litert", "onnxruntime", "numpy", "native"}
    for r in results:
        for o in r["outputs"]:
            windows = o["drift"]["window_max_abs_err"]
            assert max(windows[-5:]) <= 1.5 * max(windows[:5]), (r["backend"], o["name"], windows)
