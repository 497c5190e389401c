"""What `rnnedge check` writes: a table for the terminal, JSON (schema in schema.py,
documented in docs/check.md) and JUnit XML (one testcase per backend x precision x output)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import xml.etree.ElementTree as ET
from importlib import metadata
from typing import Any

from rnnedge.runtime.check.metrics import OutputMetrics, budget_for
from rnnedge.runtime.check.run import CheckReport, PairResult
from rnnedge.runtime.check.schema import SCHEMA_ID
from rnnedge.version import __version__

REFERENCES = {
    "golden": "golden.npz (PyTorch at export)",
    "numpy": "numpy float executor",
    "torch": "PyTorch, recomputed from --model",
}
_DISTS = ("numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime", "torch")


def _num(v: float | None) -> float | None:
    """JSON has no NaN or Inf: a non-finite number is null (the violations say why)."""
    return None if v is None or not math.isfinite(v) else float(v)


def _versions() -> dict[str, str]:
    out = {"rnnedge": __version__}
    for dist in _DISTS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _bundle_id(report: CheckReport) -> str:
    # manifest.json lists every other file's sha256, so its own hash names the whole bundle
    return hashlib.sha256((report.bundle.path / "manifest.json").read_bytes()).hexdigest()


def to_json(report: CheckReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "passed": report.passed,
        "versions": _versions(),
        "bundle": {
            "path": str(report.bundle.path),
            "sha256": _bundle_id(report),
            "producer": report.bundle.manifest.producer,
        },
        "reference": report.reference,
        "inputs": {
            "source": report.source,
            "path": report.data_path,
            "sequences": report.sequences,
            "steps": report.steps,
            "looped": report.looped,
        },
        "task": vars(report.task) if report.task else None,
        "summary": {s: report.count(s) for s in ("pass", "fail", "error", "skipped")},
        "results": [_pair_json(r) for r in report.results],
    }


def _pair_json(r: PairResult) -> dict[str, Any]:
    return {
        "backend": r.backend,
        "precision": r.precision,
        "status": r.status,
        "reason": r.reason,
        "budget": r.budget,
        "seconds": _num(r.seconds),
        "outputs": [_output_json(m) for m in r.outputs],
    }


def _output_json(m: OutputMetrics) -> dict[str, Any]:
    task = None
    if m.task is not None:
        task = {k: _num(v) if not isinstance(v, str) else v for k, v in m.task.items()}
    return {
        "name": m.name,
        "kind": m.kind,
        "passed": m.passed,
        "violations": list(m.violations),
        "max_abs_err": _num(m.max_abs_err),
        "scaled_abs_err": _num(m.scaled_abs_err),
        "range_rel_err": _num(m.range_rel_err),
        "rel_l2": _num(m.rel_l2),
        "cosine": _num(m.cosine),
        "drift": {
            "window_steps": m.window_steps,
            "window_max_abs_err": [_num(w) for w in m.windows],
            "ratio": _num(m.drift_ratio),
        },
        "task": task,
    }


def write_json(report: CheckReport, path: str | os.PathLike) -> None:
    with open(path, "w") as f:
        json.dump(to_json(report), f, indent=2, allow_nan=False)
        f.write("\n")


def _suite_name(report: CheckReport) -> str:
    return report.bundle.path.name.removesuffix(".rnnedge") or "bundle"


def junit_xml(report: CheckReport) -> ET.ElementTree:
    """One testcase per backend x precision x output (states included): classname
    rnnedge.check.BUNDLE.BACKEND.PRECISION, name the output. A budget violation is a
    <failure>, a backend that cannot load or run is an <error> on each of its outputs, and a
    pair that does not apply here is <skipped>."""
    suite_name = _suite_name(report)
    names = [(t.name) for t in report.bundle.graph.outputs]
    suite = ET.Element("testsuite", name=f"rnnedge check {suite_name}")
    props = ET.SubElement(suite, "properties")
    for k, v in (("reference", report.reference), ("steps", report.steps)):
        ET.SubElement(props, "property", name=k, value=str(v))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for r in report.results:
        by_name = {m.name: m for m in r.outputs}
        per = (r.seconds or 0.0) / max(1, len(names))
        for name in names:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"rnnedge.check.{suite_name}.{r.backend}.{r.precision}",
                name=name,
                time=f"{per:.6f}",
            )
            counts["tests"] += 1
            kind = _case_outcome(case, r, by_name.get(name))
            if kind:
                counts[kind] += 1
    for k, v in counts.items():
        suite.set(k, str(v))
    root = ET.Element("testsuites", name="rnnedge check", **{k: suite.get(k) for k in counts})
    root.append(suite)
    return ET.ElementTree(root)


def _case_outcome(case: ET.Element, r: PairResult, m: OutputMetrics | None) -> str | None:
    if r.status == "skipped":
        ET.SubElement(case, "skipped", message=r.reason)
        return "skipped"
    if m is None or r.status == "error":
        ET.SubElement(case, "error", message=r.reason or "no result", type="error")
        return "errors"
    if not m.passed:
        el = ET.SubElement(case, "failure", message="; ".join(m.violations), type="budget")
        el.text = _metrics_line(m)
        return "failures"
    return None


def write_junit(report: CheckReport, path: str | os.PathLike) -> None:
    tree = junit_xml(report)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _metrics_line(m: OutputMetrics) -> str:
    return (
        f"max abs err {m.max_abs_err:.3g}, scaled {m.scaled_abs_err:.3g}, "
        f"range rel {m.range_rel_err:.3g}, "
        f"rel L2 {m.rel_l2:.3g}, cosine {m.cosine:.6f}"
    )


def _task_cell(m: OutputMetrics) -> str:
    t = m.task
    if not t:
        return "-"
    if t["kind"] == "regression":
        return f"rmse {t['rmse']:.2e}"
    cell = f"agree {100 * float(t['argmax_agreement']):.1f}%"  # type: ignore[arg-type]
    if t.get("accuracy") is not None:
        cell += f" acc {100 * float(t['accuracy']):.1f}%"  # type: ignore[arg-type]
    return cell


def _budget_cell(budget: dict[str, float]) -> str:
    short = {"max_abs_err": "abs", "scaled_abs_err": "scaled", "range_rel_err": "range"}
    return ",".join(f"{short.get(k, k)}<={v:g}" for k, v in budget.items()) or "-"


def format_table(report: CheckReport) -> str:
    """The terminal summary: one row per backend x precision x output, then a verdict."""
    b = report.bundle
    where = f"{report.data_path}" if report.source == "data" else "golden.npz"
    lines = [
        f"rnnedge check {b.path.name}: {report.sequences} sequence(s) from {where}, "
        f"{report.steps} steps{' (looped, state carried)' if report.looped else ''}",
        f"reference: {REFERENCES[report.reference]}",
        "",
    ]
    head = ["backend", "precision", "output", "max abs", "scaled", "range rel", "rel L2"]
    head += ["cosine"]
    head += ["drift", "task", "budget", "result"]
    rows: list[list[str] | tuple[str, str, str]] = [head]
    for r in report.results:
        if r.status in ("skipped", "error") and not r.outputs:
            rows.append((r.backend, r.precision, f"{r.status.upper()}: {r.reason}"))
            continue
        for m in r.outputs:
            drift = f"{m.drift_ratio:.1f}x" if m.drift_ratio is not None else "-"
            rows.append(
                [r.backend, r.precision, m.name if m.kind == "output" else f"{m.name} (state)"]
                + [f"{v:.2e}" for v in (m.max_abs_err, m.scaled_abs_err, m.range_rel_err, m.rel_l2)]
                + [
                    f"{m.cosine:.7f}",
                    drift,
                    _task_cell(m),
                    _budget_cell(budget_for(r.budget, m.name)),
                ]
                + ["ok" if m.passed else "FAIL " + "; ".join(m.violations)]
            )
        if r.status == "error":
            rows.append((r.backend, r.precision, f"ERROR: {r.reason}"))
    lines += _columns(rows)
    lines += ["", _verdict(report)]
    return "\n".join(lines)


def _columns(rows: list[list[str] | tuple[str, str, str]]) -> list[str]:
    """Aligned columns (text left, numbers right); the task column only when a task exists;
    a tuple (backend, precision, text) is a skipped or failed backend's one line."""
    table = [r for r in rows if isinstance(r, list)]
    t = table[0].index("task")
    keep = [i for i in range(len(table[0])) if i != t or any(r[t] != "-" for r in table[1:])]
    widths = {i: max(len(r[i]) for r in table) for i in keep}
    out = []
    for r in rows:
        if isinstance(r, tuple):
            out.append(f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}")
            continue
        cells = [r[i].ljust(widths[i]) if i < 3 else r[i].rjust(widths[i]) for i in keep[:-1]]
        out.append("  ".join([*cells, r[keep[-1]]]).rstrip())
    return out


def _verdict(report: CheckReport) -> str:
    n = {s: report.count(s) for s in ("pass", "fail", "error", "skipped")}
    tail = f"{n['pass']} passed, {n['fail']} failed, {n['error']} errors, {n['skipped']} skipped"
    if report.passed:
        return f"PASS: every checked backend x precision is within budget ({tail})"
    bad = [
        f"{r.backend}/{r.precision}" + (f" ({r.reason})" if r.reason else "")
        for r in report.results
        if r.status in ("fail", "error")
    ]
    return f"FAIL ({tail}): " + "; ".join(bad) if bad else f"FAIL: nothing was checked ({tail})"
