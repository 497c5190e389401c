"""The arm64 check's int8-vs-spec comparison (boards/arm64/spec_steps.py), on x86: zoo models
calibrated and planned here (a float zoo bundle has no int8 file), LiteRT int8 against the
numpy spec step by step and free-running, in the rounding each interpreter is held to, and
the report's gate on hand-made results. The emulated run itself is `make arm64`."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from models import build

from rnnedge.export.capture.program import capture
from rnnedge.export.tflite import emit_tflite
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.runtime.bundle import Bundle, read_bundle, write_bundle
from rnnedge.runtime.inputs import sample_input
from rnnedge.runtime.manifest import Manifest, ModelFile, state_specs

pytest.importorskip("ai_edge_litert.interpreter")

# boards/arm64/ is a folder of scripts, not a package: load spec_steps.py under its own name
_PATH = Path(__file__).resolve().parents[2] / "boards" / "arm64" / "spec_steps.py"
_SPEC = importlib.util.spec_from_file_location("spec_steps", _PATH)
spec_steps = importlib.util.module_from_spec(_SPEC)
sys.modules["spec_steps"] = spec_steps  # dataclasses look their module up here
_SPEC.loader.exec_module(spec_steps)

STEPS = 60


def _int8_bundle(name: str) -> tuple[Bundle, np.ndarray]:
    """The zoo model `name` with a full-int8 TFLite file, and STEPS inputs for it."""
    model, example = build(name)
    g = capture(model, example).graph
    x = g.data_inputs[0]
    seqs = [1.5 * sample_input(g, x, np.random.default_rng(s), (100,)) for s in range(4)]
    plan = plan_int8(g, calibrate(g, seqs))
    manifest = Manifest(
        producer="test", inputs=g.inputs, outputs=g.outputs, states=state_specs(g), files={},
        models=(ModelFile(path="model.int8.tflite", backend="tflite", precision="int8"),),
    )  # fmt: skip
    files = {"quant.json": plan.to_json().encode(), "model.int8.tflite": emit_tflite(g, plan)}
    xs = 1.5 * sample_input(g, x, np.random.default_rng(7), (STEPS,))
    return Bundle(Path(f"{name}_int8.rnnedge"), manifest, g, files), xs


def _rows(name: str, machine: str) -> list:
    bundle, xs = _int8_bundle(name)
    text, fp32 = spec_steps.measure(bundle, xs, machine=machine)
    assert len(fp32) == STEPS  # the fp32 spec's own run, recorded as the numpy backend's int8
    return spec_steps.spec_rows(name, machine, text)


@pytest.mark.parametrize("name", ["gru", "lstm_2layer"])
def test_litert_int8_is_within_two_steps_of_its_spec_on_x86(name):
    rows = _rows(name, "x86_64")
    held = {(r.backend, r.rounding) for r in rows if r.held}
    # x86 XNNPACK rounds in float32; the builtin kernels in TFLite's fixed point
    assert held == {("litert", "fp32"), ("litert-builtin", "tflite")}
    assert spec_steps.spec_failures(rows) == []
    ints = [r for r in rows if r.integer and r.held]
    assert {r.output for r in ints} >= {"y", "rnn.h_out"}
    assert all(r.step == r.free == 0 for r in ints), rows  # measured: bit for bit


def test_holding_x86_xnnpack_to_the_arm64_spec_shows_steps():
    # on x86 XNNPACK is the fp32 spec, so against the fixed point one it is off: the
    # comparison can fail (as it would on arm64 if XNNPACK there rounded in float32)
    rows = _rows("gru", "aarch64")
    litert = [r for r in rows if r.backend == "litert" and r.integer and r.held]
    assert {r.rounding for r in litert} == {"tflite"}
    assert max(max(r.step, r.free) for r in litert) >= 1, rows
    # the other rounding is reported, not held: fp32 is what x86 XNNPACK computes
    other = [r for r in rows if r.backend == "litert" and r.integer and not r.held]
    assert {r.rounding for r in other} == {"fp32"} and all(r.free == 0 for r in other)


def _result(step: list[float], free: list[float]) -> str:
    r = {"outputs": ["y", "h", "c"], "unit": [0.01, 0.02, None], "steps": 3}
    other = {"step": [9, 9, 9], "free": [9, 9, 9]}  # the rounding not held: never gated
    litert = {"held": "tflite", "tflite": {"step": step, "free": free}, "fp32": other}
    return json.dumps(r | {"litert": litert})


def test_more_than_two_steps_on_an_integer_output_fails():
    rows = spec_steps.spec_rows("gru_int8", "cortex-a72", _result([0, 3, 5.0], [2, 0, 9.0]))
    held = [(r.output, r.integer) for r in rows if r.held]
    assert held == [("y", True), ("h", True), ("c", False)]
    # h 3 steps step by step fails; y 2 free-running is within; the float c is not gated
    assert spec_steps.spec_failures(rows) == [
        "gru_int8 litert/int8 on cortex-a72: 'h' step by step 3 quantisation steps from the "
        "'tflite' spec (limit 2)"
    ]


def test_spec_table_has_a_column_group_per_machine():
    rows = spec_steps.spec_rows("g", "x86", _result([0, 0, 0], [0, 1, 1e-7]))
    rows += spec_steps.spec_rows("g", "cortex-a76", _result([1, 0, 0], [0, 0.5, 0]))
    head, _, *lines = spec_steps.spec_table(rows).splitlines()
    assert head.count("x86") == 2 and head.count("cortex-a76") == 2
    assert lines[3:] == [  # the held rounding's cells in bold
        "| g | litert | c (f) | tflite | **0** | **1.0e-07** | **0** | **0** |",
        "| g | litert | h | tflite | **0** | **1** | **0** | **0.50** |",
        "| g | litert | y | tflite | **0** | **0** | **1** | **0** |",
    ]
    assert lines[0] == "| g | litert | c (f) | fp32 | 9.0e+00 | 9.0e+00 | 9.0e+00 | 9.0e+00 |"


def _load_compare():
    path = _PATH.parent / "compare.py"
    spec = importlib.util.spec_from_file_location("arm64_compare_spec", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["arm64_compare_spec"] = module
    spec.loader.exec_module(module)
    return module


def test_compare_records_int8_bundles_against_the_spec(zoo_bundle, tmp_path, capsys):
    # compare.py's record and report on a float bundle and its *_int8 twin (the float export
    # with a full-int8 TFLite file added): the int8 bundle runs in int8 only, the numpy
    # backend's int8 comes from the spec's run, equal runs are not rerun step by step, and the
    # report holds every int8 output to its spec
    compare = _load_compare()
    float_path = zoo_bundle("gru")[0]
    made, _ = _int8_bundle("gru")
    fb = read_bundle(float_path)
    files = {**fb.files, "quant.json": made.files["quant.json"]}
    files["model.int8.tflite"] = made.files["model.int8.tflite"]
    manifest = dataclasses.replace(fb.manifest, models=fb.manifest.models + made.manifest.models)
    int8_path = write_bundle(tmp_path / "gru_int8.rnnedge", manifest, files)
    ref = compare.record([float_path, int8_path], None, steps=30, spec_steps_n=20)
    assert "gru_int8|numpy|float|free|out0" not in ref  # int8 only
    assert ref["gru_int8|numpy|int8|free|out0"].shape[0] == 20  # the spec's 20 steps
    arm = compare.record([float_path, int8_path], ref, steps=30, spec_steps_n=20)
    for k in ("gru_int8|litert|int8", "gru_int8|numpy|int8"):  # equal: forced = free
        assert np.array_equal(arm[f"{k}|forced|out0"], arm[f"{k}|free|out0"])
    assert compare.report(ref, {"a72": arm}) == 0
    assert "| gru_int8 | litert | fp32: 0 / 0 | fp32: 0 / 0 |" in capsys.readouterr().out
    # 3 steps on LiteRT's y, step by step, in the rounding it is held to: the report fails
    result = json.loads(str(arm["spec|gru_int8"]))
    result["litert"]["fp32"]["step"][0] = 3.0
    arm["spec|gru_int8"] = np.array(json.dumps(result))
    assert compare.report(ref, {"a72": arm}) == 1
    assert "FAIL: gru_int8 litert/int8 on a72: 'y' step by step 3" in capsys.readouterr().out
