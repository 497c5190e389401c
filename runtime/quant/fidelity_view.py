"""The int8-vs-float part of `rnnedge inspect`: manifest.int8_fidelity as text (export
measures it: export/int8_fidelity.py)."""

from __future__ import annotations

from typing import Any

SPLITS = {"calibration": "calibration", "held_out": "held-out"}


def describe_fidelity(rec: dict[str, Any]) -> list[str]:
    if not rec:
        return []
    budget = rec.get("budget", {})
    state = "holds" if rec.get("met") else "MISSED"
    lines = [
        f"int8 vs float at export ({rec.get('mode', '?')}; budget <= "
        f"{budget.get('max_err_pct', '?')}% of range"
        f"{'' if budget.get('allow_drift') else ', no drift'}: {state}):"
    ]
    for key, label in SPLITS.items():
        split = rec.get("splits", {}).get(key)
        if split:
            lines.append(
                f"  {label} ({split.get('sequences')} sequences, {split.get('steps')} steps)"
            )
            lines += [f"    {_output(o)}" for o in split.get("outputs", [])]
    before = rec.get("all_int8", {}).get("held_out") or rec.get("all_int8", {}).get("calibration")
    if before:
        worst = max((o.get("max_err_pct", 0.0) for o in before.get("outputs", [])), default=0.0)
        lines.append(f"  all-int8 would have been: max {worst:.2f}% of range")
    kept = rec.get("kept_float", [])
    if kept:
        lines.append(f"  kept float by mixed precision ({len(kept)}):")
        lines += [f"    {k.get('tensor')}: {k.get('why')}" for k in kept]
    return lines


def _output(o: dict[str, Any]) -> str:
    text = (
        f"{o.get('name')}: max {o.get('max_err_pct', 0.0):.2f}% of range, "
        f"mean {o.get('mean_err', 0.0):.3g}"
    )
    if o.get("agreement") is not None:
        text += f", {o.get('decision')} agrees {100 * o['agreement']:.2f}%"
    drift = o.get("drift", 0.0)
    text += f", drift {drift:.2f}x" + (" (drifting)" if o.get("drifting") else "")
    if o.get("clipped_pct"):  # float values beyond the int8 output's grid, clipped in int8
        text += f", clipped {o['clipped_pct']:.3g}% of values"
    return text
