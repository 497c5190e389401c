"""`rnnedge check`'s metrics and verdicts on values worked out by hand (see docs/check.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnedge.runtime.check.metrics import judge, output_metrics, task_metrics
from rnnedge.runtime.manifest import Task


def test_metrics_on_known_values() -> None:
    y = [np.array([[0.0, 1.0], [2.0, 2.0], [1.0, 5.0]], np.float32)]  # 3 steps of 2 values
    r = [np.array([[0.0, 1.0], [2.0, 1.5], [1.0, 4.0]], np.float32)]
    m = output_metrics("y", "output", y, r, n_windows=3)
    assert m.max_abs_err == 1.0
    assert m.scaled_abs_err == pytest.approx(1.0 / 4.0)  # / max(1, max |ref|) = / 4
    assert m.range_rel_err == pytest.approx(1.0 / 4.0)  # reference spans 0..4
    assert m.rel_l2 == pytest.approx(math.sqrt(1.25) / math.sqrt(1 + 4 + 2.25 + 1 + 16))
    dot = 1 + 4 + 3 + 1 + 20
    assert m.cosine == pytest.approx(dot / (math.sqrt(1 + 4 + 4 + 1 + 25) * math.sqrt(24.25)))
    assert list(m.curve) == [0.0, 0.5, 1.0]
    assert m.windows == (0.0, 0.5, 1.0) and m.drift_ratio is None  # first window is exact
    assert judge(m, {"max_abs_err": 0.5}, False) == ("max_abs_err 1 > 0.5",)
    assert judge(m, {"max_abs_err": 1.0, "min_cosine": 0.9}, False) == ()
    nan = output_metrics("y", "output", [y[0] * np.nan], r, 3)
    assert "non-finite" in judge(nan, {"max_abs_err": 1.0}, False)[0]


def test_drift_windows_and_ratio() -> None:
    ref = np.zeros((100, 1), np.float32)
    y = (np.arange(100, dtype=np.float32) + 1).reshape(100, 1) * 1e-6  # error grows per step
    m = output_metrics("h", "state", [y], [ref], n_windows=4)
    assert m.window_steps == 25
    assert m.windows == pytest.approx((25e-6, 50e-6, 75e-6, 100e-6))
    assert m.drift_ratio == pytest.approx(4.0)


def test_task_metrics_by_hand() -> None:
    task = Task(kind="classification")
    y = [np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])]  # argmax 1, 0, 1
    r = [np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])]  # argmax 1, 1, 1
    t = task_metrics(task, y, r, [np.array(1)])  # one label: judged at the last step
    assert t["argmax_agreement"] == pytest.approx(2 / 3)
    assert t["accuracy"] == 1.0 and t["reference_accuracy"] == 1.0
    t = task_metrics(task, y, r, [np.array([1, 1, 0])])  # one label per step
    assert t["accuracy"] == pytest.approx(1 / 3) and t["reference_accuracy"] == pytest.approx(2 / 3)
    t = task_metrics(Task(kind="regression"), y, r, [None])
    assert t["rmse"] == pytest.approx(math.sqrt((0.01 * 2 + 0.16 * 2 + 0.04 * 2) / 6))
