"""The quant.json part of `rnnedge inspect`: per tensor dtype, scales, zero points, source."""

from __future__ import annotations

import json

from rnnedge.runtime.quant_plan import QuantPlan


def describe_plan(data: bytes) -> list[str]:
    plan = QuantPlan.from_json(data)
    lines = [
        f"quantization ({plan.scheme}): {len(plan.quantized)} tensors int8, "
        f"{len(plan.left_float)} left float"
    ]
    for t in plan.quantized:
        lo, hi = min(t.scale), max(t.scale)
        zps = sorted(set(t.zero_point))
        zp = str(zps[0]) if len(zps) == 1 else f"{zps[0]}..{zps[-1]}"
        lines.append(
            f"  {t.tensor:28s} int8 per-channel axis {t.axis} ({len(t.scale)} scales "
            f"{lo:.3g}..{hi:.3g}), zero point {zp}, {t.source}"
        )
    lines += [f"  {t.tensor:28s} float32: {t.why}" for t in plan.left_float]
    calib = json.loads(data).get("calibration")  # from_json has parsed it already
    if isinstance(calib, dict):
        lines.append(
            f"calibration: {calib.get('method')}, {calib.get('sequences')} sequences, "
            f"{calib.get('steps')} steps, {len(calib.get('ranges', {}))} tensor ranges "
            "(activations stay float in int8-dynamic)"
        )
    return lines
