"""The quant.json part of `rnnedge inspect`: per tensor dtype, scales, zero points, source."""

from __future__ import annotations

from rnnedge.runtime.quant.plan import QuantPlan, TensorQuant


def describe_plan(data: bytes) -> list[str]:
    plan = QuantPlan.from_json(data)
    ints = [t for t in plan.tensors if t.dtype != "float32"]
    lines = [
        f"quantization ({plan.scheme}): {len(ints)} tensors integer, "
        f"{len(plan.left_float)} left float"
    ]
    lines += [f"  {t.tensor:28s} {_describe(t)}" for t in ints]
    lines += [f"  {t.tensor:28s} float32: {t.why}" for t in plan.left_float]
    calib = plan.calibration
    if calib is not None:
        used = "activation ranges" if plan.scheme == "int8" else "activations stay float"
        lines.append(
            f"calibration: {calib.method}, {calib.sequences} sequences, "
            f"{calib.steps} steps, {len(calib.ranges)} tensor ranges ({used})"
        )
    beyond = plan.golden_beyond_calibration
    if beyond:
        worst = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(beyond.items())[:5])
        lines.append(f"golden data beyond the calibrated range (of its width): {worst}")
    return lines


def _describe(t: TensorQuant) -> str:
    if len(t.scale) > 1:
        lo, hi = min(t.scale), max(t.scale)
        zps = sorted(set(t.zero_point))
        zp = str(zps[0]) if len(zps) == 1 else f"{zps[0]}..{zps[-1]}"
        return (
            f"{t.dtype} per-channel axis {t.axis} ({len(t.scale)} scales {lo:.3g}..{hi:.3g}), "
            f"zero point {zp}, {t.source}"
        )
    return f"{t.dtype} scale {t.scale[0]:.6g} zero point {t.zero_point[0]}, {t.source}"
