"""The arm64 check's report logic (boards/arm64/compare.py), on hand-made records: no
emulation, no bundles."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

# boards/arm64/ is a folder of scripts, not a package: load compare.py under its own name
_PATH = Path(__file__).resolve().parents[2] / "boards" / "arm64" / "compare.py"
_SPEC = importlib.util.spec_from_file_location("arm64_compare", _PATH)
compare = importlib.util.module_from_spec(_SPEC)
sys.modules["arm64_compare"] = compare  # dataclasses look their module up here
_SPEC.loader.exec_module(compare)


def _rec(out: list[float], state: list[float], mode: str = "free", golden: float = 0.0) -> dict:
    p = "gru|numpy|float"
    return {
        f"{p}|{mode}|out0": np.array(out, np.float32),
        f"{p}|{mode}|state:h": np.array(state, np.float32),
        f"{p}|golden": np.array(golden),
    }


def test_errors_are_max_abs_over_outputs_and_states() -> None:
    ref = _rec([1.0, 2.0], [0.5, 0.5])
    arm = _rec([1.0, 2.25], [0.5, 0.5], "forced") | _rec([1.0, 2.0], [0.5, 0.0])
    (row,) = compare.compare(ref, {"a72": arm})
    assert (row.bundle, row.backend, row.precision, row.cpu) == ("gru", "numpy", "float", "a72")
    assert row.forced == 0.25  # the output differs by 0.25 at step 1
    assert row.forced_rel == 0.25 / 2.0  # relative to max(1, |ref|) = 2
    assert row.free == 0.5  # the state differs by 0.5
    assert compare.failures([row]) == [
        "gru numpy/float on a72: step-by-step error 1.25e-01 > 1e-05"
    ]


def test_float_within_tolerance_passes_and_int8_is_reported_only() -> None:
    ref = _rec([1.0], [0.5]) | {
        k.replace("float", "int8"): v for k, v in _rec([1.0], [0.5]).items()
    }
    arm = _rec([1.0 + 4e-6], [0.5], "forced") | _rec([1.0], [0.5])
    arm |= {k.replace("float", "int8"): v for k, v in _rec([1.5], [0.5], "forced").items()}
    arm |= {k.replace("float", "int8"): v for k, v in _rec([1.0], [0.5]).items()}
    rows = compare.compare(ref, {"a76": arm})
    assert [(r.precision, r.forced) for r in rows] == [
        ("float", pytest.approx(4e-6, rel=0.1)),
        ("int8", 0.5),
    ]
    assert compare.failures(rows) == []


def test_a_run_missing_on_arm64_fails() -> None:
    ref = _rec([1.0], [0.5])
    arm = _rec([1.0], [0.5])  # free only: the step-by-step run is missing
    (row,) = compare.compare(ref, {"a72": arm})
    assert row.forced is None and row.free == 0
    assert compare.failures([row]) == ["gru numpy/float on a72: not run on arm64"]
    assert "missing" in compare.table([row])


def test_golden_error_over_tolerance_fails() -> None:
    ref = _rec([1.0], [0.5])
    arm = _rec([1.0], [0.5], "forced") | _rec([1.0], [0.5], golden=3e-5)
    (row,) = compare.compare(ref, {"a72": arm})
    assert compare.failures([row]) == [
        "gru numpy/float on a72: error vs PyTorch golden 3.00e-05 > 1e-05"
    ]


def test_table_has_a_column_group_per_cpu() -> None:
    ref = _rec([1.0], [0.5])
    arm = _rec([1.0], [0.5], "forced") | _rec([1.0], [0.75])
    text = compare.table(compare.compare(ref, {"a72": arm, "a76": arm}))
    head, _, line = text.splitlines()
    assert head.count("a72") == 3 and head.count("a76") == 3
    assert line == "| gru | numpy | float | 0 | 2.5e-01 | 0 | 0 | 2.5e-01 | 0 |"


def test_shape_mismatch_is_an_error_not_a_number() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare.max_abs(np.zeros(2), np.zeros(3))
