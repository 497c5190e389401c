"""The export side of int8 fidelity (issue 16): what int8 costs against float, recorded in the
manifest (`int8_fidelity`, shown by `rnnedge inspect`) and said one line each through the
export's progress callback: which tensors mixed precision kept float and why, and the size
of the int8 files against the float ones."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rnnedge.progress import Progress
from rnnedge.quantize.fidelity import Fidelity
from rnnedge.quantize.mixed import Int8Budget, Mixed
from rnnedge.runtime.backends.litert_backend import interpreter_class


def fidelity_record(mixed: Mixed, budget: Int8Budget, strict: bool) -> dict[str, Any]:
    """The manifest's int8_fidelity: the budget, whether it holds, each split's numbers (and
    the all-int8 ones when mixed precision changed the plan), the tensors kept float."""
    rec: dict[str, Any] = {
        "mode": "strict" if strict else "mixed",
        "budget": budget.to_json(),
        "met": mixed.met,
        "splits": {k: f.to_json() for k, f in mixed.after.items()},
        "kept_float": [{"tensor": t, "why": w} for t, w in mixed.kept.items()],
    }
    if mixed.kept:
        rec["all_int8"] = {k: f.to_json() for k, f in mixed.before.items()}
    return rec


def say_fidelity(mixed: Mixed, say: Progress) -> None:
    for t, why in mixed.kept.items():
        say(f"  kept float: {t}: {why}")
    for f in mixed.after.values():
        say(f"  int8 vs float, {f.split} ({f.sequences} sequences, {f.steps} steps): {_line(f)}")
    if not mixed.met:
        say("  warning: int8 still misses its budget with these tensors float (see inspect)")


def _line(f: Fidelity) -> str:
    parts = []
    for o in f.outputs:
        text = f"{o.name} max {o.max_err_pct:.2f}% of range, mean {o.mean_err:.3g}"
        if o.agreement is not None:
            text += f", {o.decision} agrees {100 * o.agreement:.2f}%"
        text += f", drift {o.drift:.2f}x" + (" (drifting)" if o.drifting else "")
        if o.clipped_pct:  # float values beyond the int8 output's grid: clipped in int8
            text += f", clipped {o.clipped_pct:.3g}% of values"
        parts.append(text)
    return "; ".join(parts)


def say_sizes(files: dict[str, bytes], precision: str, say: Progress) -> None:
    """One line: each int8 file's size against the float file's, and one quick LiteRT timing
    of the int8 and float files (median of TIMED steps, one thread; on a shared machine a
    rough ratio, not a benchmark: `rnnedge bench` measures)."""
    parts = []
    for kind in ("onnx", "tflite"):
        q, f = files.get(f"model.{precision}.{kind}"), files.get(f"model.{kind}")
        if q is not None and f:
            pct = f"{100 * len(q) / len(f):.0f}% of float {len(f) / 1024:.1f} KiB"
            parts.append(f"model.{precision}.{kind} {len(q) / 1024:.1f} KiB ({pct})")
    speed = _quick_speed(files.get(f"model.{precision}.tflite"), files.get("model.tflite"))
    say(f"  {precision} size: {', '.join(parts)}; speed: {speed}")


TIMED = 200


def _quick_speed(q: bytes | None, f: bytes | None) -> str:
    if q is None or f is None:
        return "not timed (no TFLite files)"
    try:
        make = interpreter_class()
        us = [_median_us(make, model) for model in (q, f)]
    except Exception as e:  # a timing must never fail an export: say why there is none
        return f"not timed ({type(e).__name__}: {str(e)[:60]})"
    ratio = f"{us[0] / us[1]:.2f}x, one quick run"
    return f"LiteRT {us[0]:.1f} us/step int8 vs {us[1]:.1f} float ({ratio})"


def _median_us(make: Any, model: bytes) -> float:
    it = make(model_content=model, num_threads=1)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    times = []
    for i in range(TIMED + 20):  # 20 warm-up calls
        t0 = time.perf_counter()
        it.invoke()
        if i >= 20:
            times.append(time.perf_counter() - t0)
    return 1e6 * float(np.median(times))
