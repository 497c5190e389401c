"""The numbers `rnnedge check` reports for one output (or state) of one backend x precision,
and how a budget judges them. Pure numpy; definitions are documented in docs/check.md.

Every metric is taken over all evaluated steps of all sequences at once. The error curve is
per step index: the max abs error over the tensor's elements and over the sequences that have
that step, so drift that grows with the stream's length shows as a rising curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnedge.runtime.manifest import Task

# budget metric -> (the metric it limits, "max": metric <= limit | "min": metric >= limit).
# min_argmax_agreement applies to the task output of a classification task only.
BUDGET_RULES: dict[str, tuple[str, str]] = {
    "max_abs_err": ("max_abs_err", "max"),
    "scaled_abs_err": ("scaled_abs_err", "max"),
    "range_rel_err": ("range_rel_err", "max"),
    "rel_l2": ("rel_l2", "max"),
    "min_cosine": ("cosine", "min"),
    "min_argmax_agreement": ("argmax_agreement", "min"),
}


MIN_DRIFT_STEPS = 100  # shorter streams get no drift ratio


@dataclass(frozen=True, kw_only=True)
class OutputMetrics:
    name: str
    kind: str  # "output" | "state"
    max_abs_err: float
    # max abs error / max(1, max |ref|): absolute where the reference stays within [-1, 1],
    # relative beyond (the convention of the tests' assert_close and of the export gate).
    # float32 rounding is relative, so an absolute limit alone fails correct backends on
    # large outputs (the digits demo's logits reach ~26: 1.4e-5 abs after 10,000 steps).
    scaled_abs_err: float
    ref_scale: float  # max(1, max |ref|): scaled_abs_err = max_abs_err / ref_scale
    range_rel_err: float  # max abs error / (max - min of the reference); / 1 if constant
    rel_l2: float  # ||y - ref|| / ||ref|| over everything (||y - ref|| if ref is all zero)
    cosine: float  # of y and ref flattened; 1 when both are all zero
    curve: np.ndarray = field(repr=False)  # (steps,) max abs error at each step index
    window_steps: int
    windows: tuple[float, ...]  # max of the curve in consecutive windows of window_steps
    drift_ratio: float | None  # last window / first; None if the first is 0 or < 100 steps
    task: dict[str, float | str | None] | None = None
    violations: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.violations


def output_metrics(
    name: str, kind: str, ys: Sequence[np.ndarray], refs: Sequence[np.ndarray], n_windows: int
) -> OutputMetrics:
    """ys, refs: per sequence, (T_i, *shape) arrays of the backend and the reference."""
    y = np.concatenate([a.reshape(-1) for a in ys]).astype(np.float64)
    r = np.concatenate([a.reshape(-1) for a in refs]).astype(np.float64)
    diff = np.abs(y - r)
    max_abs = float(diff.max(initial=0.0)) if not np.isnan(diff).any() else math.nan
    scale = max(1.0, float(np.abs(r).max(initial=0.0)))
    spread = float(r.max(initial=0.0) - r.min(initial=0.0)) if r.size else 0.0
    ref_norm, y_norm = float(np.linalg.norm(r)), float(np.linalg.norm(y))
    err_norm = float(np.linalg.norm(y - r))
    curve = error_curve(ys, refs)
    window_steps, windows = _windows(curve, n_windows)
    return OutputMetrics(
        name=name,
        kind=kind,
        max_abs_err=max_abs,
        scaled_abs_err=max_abs / scale,
        ref_scale=scale,
        range_rel_err=max_abs / spread if spread > 0 else max_abs,
        rel_l2=err_norm / ref_norm if ref_norm > 0 else err_norm,
        cosine=_cosine(y, r, y_norm, ref_norm),
        curve=curve,
        window_steps=window_steps,
        windows=windows,
        drift_ratio=_drift_ratio(curve, windows),
    )


def error_curve(ys: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> np.ndarray:
    steps = max((len(a) for a in ys), default=0)
    curve = np.zeros(steps, np.float64)
    for y, r in zip(ys, refs):
        e = np.abs(y.astype(np.float64) - r).reshape(len(y), -1).max(axis=1, initial=0.0)
        curve[: len(e)] = np.maximum(curve[: len(e)], e)  # np.maximum keeps NaN visible
    return curve


def _windows(curve: np.ndarray, n: int) -> tuple[int, tuple[float, ...]]:
    if curve.size == 0:
        return 0, ()
    size = -(-curve.size // max(1, n))  # ceil: at most n windows, the last may be shorter
    return size, tuple(float(curve[i : i + size].max()) for i in range(0, curve.size, size))


def _drift_ratio(curve: np.ndarray, windows: tuple[float, ...]) -> float | None:
    # a short sequence's first window is its warm-up from the initial state, where the error
    # is smallest: a ratio there would read as drift when it is not
    if curve.size < MIN_DRIFT_STEPS or not windows or windows[0] <= 0:
        return None
    return windows[-1] / windows[0]


def _cosine(y: np.ndarray, r: np.ndarray, y_norm: float, r_norm: float) -> float:
    if y_norm == 0 and r_norm == 0:
        return 1.0
    if y_norm == 0 or r_norm == 0:
        return 0.0
    return float(np.dot(y, r) / (y_norm * r_norm))


def task_metrics(
    task: Task,
    ys: Sequence[np.ndarray],
    refs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray | None],
) -> dict[str, float | str | None]:
    """classification: argmax agreement with the reference over every step, and accuracy
    against the labels where given (a scalar label judges a sequence's last step, a (T,)
    label every step); regression: RMSE against the reference."""
    if task.kind == "regression":
        d = np.concatenate([(y.astype(np.float64) - r).reshape(-1) for y, r in zip(ys, refs)])
        return {"kind": "regression", "rmse": float(np.sqrt(np.mean(d**2))) if d.size else 0.0}
    pred = [np.argmax(y, axis=task.class_axis) for y in ys]
    ref_pred = [np.argmax(r, axis=task.class_axis) for r in refs]
    same = np.concatenate([(p == q).reshape(-1) for p, q in zip(pred, ref_pred)])
    out: dict[str, float | str | None] = {
        "kind": "classification",
        "argmax_agreement": float(same.mean()) if same.size else 1.0,
        "accuracy": None,
        "reference_accuracy": None,
    }
    if any(lab is not None for lab in labels):
        out["accuracy"] = _accuracy(pred, labels)
        out["reference_accuracy"] = _accuracy(ref_pred, labels)
    return out


def _accuracy(pred: Sequence[np.ndarray], labels: Sequence[np.ndarray | None]) -> float:
    hits: list[np.ndarray] = []
    for p, lab in zip(pred, labels):
        if lab is None:
            continue
        lab = np.asarray(lab)
        # one label per sequence judges its last step; one per step judges every step
        got = p[-1] == lab if lab.ndim == 0 else p == lab.reshape(len(p), *[1] * (p.ndim - 1))
        hits.append(np.asarray(got).reshape(-1))
    h = np.concatenate(hits) if hits else np.zeros(0, bool)
    return float(h.mean()) if h.size else math.nan


def budget_for(budget: dict[str, float], name: str) -> dict[str, float]:
    """The rules of a precision's budget that hold output (or state) `name`: "RULE@NAME" is
    that output's own limit (export measures each output's error and budgets it alone), and
    replaces the precision-wide "RULE" for it; rules for other outputs do not apply."""
    own = {k.partition("@")[0]: v for k, v in budget.items() if k.partition("@")[2] == name}
    return {**{k: v for k, v in budget.items() if "@" not in k}, **own}


def judge(m: OutputMetrics, budget: dict[str, float], is_task_output: bool) -> tuple[str, ...]:
    """The budget's violations for one output, each a short readable sentence."""
    out = []
    for rule, limit in budget_for(budget, m.name).items():
        if rule not in BUDGET_RULES:
            out.append(f"budget metric {rule!r} is unknown to this rnnedge")
            continue
        metric, sense = BUDGET_RULES[rule]
        if metric == "argmax_agreement":
            if not is_task_output or not m.task or m.task.get("kind") != "classification":
                continue
            value = float(m.task["argmax_agreement"])  # type: ignore[arg-type]
        else:
            value = getattr(m, metric)
        if not math.isfinite(value):
            out.append(f"{metric} is {value} (non-finite output)")
        elif sense == "max" and value > limit:
            out.append(f"{metric} {value:.3g} > {limit:g}")
        elif sense == "min" and value < limit:
            out.append(f"{metric} {value:.3g} < {limit:g}")
    return tuple(out)
