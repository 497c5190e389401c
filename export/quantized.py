"""The int8 parts of export_bundle: plan, emit, write quant.json, measure parity and budgets.

Called from pipeline.py; each function takes values and returns new ones (the manifest and
the file dict are replaced, never edited). Two precisions:
  int8-dynamic  int8 weights, float activations (quantize/int8_dynamic.py)
  int8          full integer: int8 activations from calibration, int32 biases, float LSTM
                cell (quantize/int8.py); checked against the numpy integer spec
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np

from rnnedge.errors import CalibrationRangeWarning, ExportError
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.quantize.calibrate import Overrun, calibrate, range_overruns
from rnnedge.quantize.int8 import plan_int8
from rnnedge.quantize.int8_dynamic import plan_int8_dynamic
from rnnedge.runtime.backends import available_backends
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import Manifest, ModelFile
from rnnedge.runtime.quant.fixed import RANGES
from rnnedge.runtime.quant.plan import QuantPlan, Ranges

SCHEMES = {
    "int8-dynamic": "rnnedge int8-dynamic v1: int8 weights per output channel, symmetric; "
    "float activations",
    "int8": "rnnedge int8 v1: int8 weights per output channel, int32 biases, int8 activations "
    "(calibrated, fixed for sigmoid/tanh outputs), float LSTM cell, TFLite arithmetic",
}
# int8-dynamic gets its own gate against PyTorch: a backend beyond it is an emitter bug, not
# rounding (measured errors on the zoo and the demo are 1e-3..1e-2 scaled; a wrong weight
# layout gives errors of order 1). Full int8 is not gated against PyTorch: data beyond the
# calibrated range clips, legitimately, by any amount (export warns about it); its files are
# held to the numpy integer spec instead, in quantisation steps of each output: measured
# 0 steps for LiteRT (<= 1 on the LSTM cell's tanh), <= 2 for onnxruntime.
GATES = {"int8-dynamic": 0.1, "int8": float("inf")}
SPEC_GATE_STEPS = 8
BUDGET_FLOOR = 1e-3  # the budget is 2x the measured error plus this, so check has headroom
BUDGET_STEPS = 2000
# Activation ranges from fewer sequences are a guess: one sequence rarely visits the range of
# another (measured: 8 x 500 steps clipped an output by 8%, 20 x 500 did not).
MIN_CALIBRATION_SEQUENCES = 4
RANGE_WARNING = 0.10  # golden data beyond the calibrated range by this fraction is reported

Progress = Callable[[str], None]


def add_int8(
    precision: str,
    graph: Graph,
    calib: list[np.ndarray] | None,
    golden: list[np.ndarray],
    manifest: Manifest,
    files: dict[str, bytes],
    say: Progress,
    *,
    percentile: float | None = None,
) -> tuple[Manifest, dict[str, bytes]]:
    ranges, overruns = None, []
    if precision == "int8":
        ranges = _calibrate_int8(graph, calib, percentile, say)
        plan = plan_int8(graph, ranges)
        overruns = _warn_out_of_range(graph, plan, ranges, golden, say)
    else:
        plan = plan_int8_dynamic(graph)
        if calib is not None:  # activation ranges: unused by int8-dynamic, recorded for inspect
            ranges = calibrate(graph, calib, percentile=percentile, progress=say)
    ints = [t for t in plan.tensors if t.dtype != "float32"]
    say(f"{precision}: {len(ints)} tensors integer, {len(plan.left_float)} left float")
    for t in plan.left_float:
        say(f"  {t.tensor} stays float: {t.why}")
    beyond = {o.tensor: round(o.fraction, 4) for o in overruns}
    plan = dataclasses.replace(plan, calibration=ranges, golden_beyond_calibration=beyond)
    new = dict(files)
    new["quant.json"] = plan.to_json().encode()
    new[f"model.{precision}.onnx"] = emit_onnx(graph, plan)
    new[f"model.{precision}.tflite"] = emit_tflite(graph, plan)
    models = (
        *manifest.models,
        ModelFile(path=f"model.{precision}.onnx", backend="onnx", precision=precision),
        ModelFile(path=f"model.{precision}.tflite", backend="tflite", precision=precision),
    )
    return dataclasses.replace(manifest, models=models, int8_scheme=SCHEMES[precision]), new


def _calibrate_int8(
    graph: Graph, calib: list[np.ndarray] | None, percentile: float | None, say: Progress
) -> Ranges:
    if calib is None:
        raise ExportError(
            "quantize='int8' needs calibration sequences (--calibration data.npz, or "
            "calibration=[arrays]): full int8 fixes every activation's range from them"
        )
    if len(calib) < MIN_CALIBRATION_SEQUENCES:
        raise ExportError(
            f"quantize='int8' needs at least {MIN_CALIBRATION_SEQUENCES} calibration "
            f"sequences, got {len(calib)}: ranges from fewer rarely cover deployment data"
        )
    return calibrate(graph, calib, percentile=percentile, progress=say)


def _warn_out_of_range(
    graph: Graph, plan: QuantPlan, ranges: Ranges, golden: list[np.ndarray], say: Progress
) -> list[Overrun]:
    """Says which calibrated tensors the golden sequences drive beyond the range their
    integers can hold (the calibrated range widened to hold 0), and by how much."""
    held = {}
    for t in plan.tensors:
        if t.source == "calibrated" and t.dtype != "float32":
            lo, hi = RANGES[t.dtype]
            held[t.tensor] = (
                t.scale[0] * (lo - t.zero_point[0]),
                t.scale[0] * (hi - t.zero_point[0]),
            )
    representable = dataclasses.replace(ranges, ranges=held)
    over = range_overruns(representable, calibrate(graph, golden), held)
    over = [o for o in over if o.fraction > RANGE_WARNING]
    for o in over[:8]:
        say(f"  warning: {o.describe()}")
        warnings.warn(o.describe(), CalibrationRangeWarning, stacklevel=4)
    if len(over) > 8:
        say(f"  warning: ... and {len(over) - 8} more tensors beyond their calibrated range")
    return over


def int8_parity(bundle: Bundle, manifest: Manifest, precision: str, say: Progress) -> Manifest:
    """Each backend's error against PyTorch on the golden sequences, recorded in
    manifest.parity, and the budget `rnnedge check` holds the precision to. The budget also
    covers one long stream (the golden inputs looped for BUDGET_STEPS steps, state carried):
    short golden sequences miss the tail of the rounding error that a GRU's slow units
    accumulate (the digits demo in int8-dynamic: 0.058 over 4 x 8 steps, 0.15 within the
    first 500 looped). Full int8 is also held to the numpy integer spec (spec_agreement)."""
    from rnnedge.export.pipeline import parity
    from rnnedge.runtime.check.run import CheckConfig, run_check

    results, worst = parity(bundle, precision, GATES[precision], say)
    if precision == "int8":
        for key, entry in spec_agreement(bundle, say).items():
            results[key] = {**results.get(key, {}), **entry}
    say(f"  measuring {precision} over {BUDGET_STEPS} looped steps for its check budget")
    report = run_check(bundle, CheckConfig(precisions=(precision,), steps=BUDGET_STEPS))
    long_run = max(
        (o.scaled_abs_err for r in report.results if r.precision == precision for o in r.outputs),
        default=0.0,
    )
    worst = max(worst, long_run)
    budgets = {**manifest.budgets, precision: {"scaled_abs_err": 2 * worst + BUDGET_FLOOR}}
    return dataclasses.replace(manifest, parity={**manifest.parity, **results}, budgets=budgets)


def spec_agreement(bundle: Bundle, say: Progress) -> dict[str, dict[str, float]]:
    """The int8 files against the numpy integer spec on the golden sequences, given the same
    input and state at every step: the max difference in quantisation steps of each integer
    output. Beyond SPEC_GATE_STEPS the file computes something else: refuse the bundle."""
    from rnnedge.runtime.check.steps import steps_apart

    out: dict[str, dict[str, float]] = {}
    for name in ("litert", "onnxruntime"):
        if name not in available_backends():
            say(f"  {name}/int8 vs numpy spec: skipped (not installed)")
            continue
        steps = steps_apart(bundle, name)
        worst = max(steps.values(), default=0.0)
        say(f"  {name}/int8 vs numpy integer spec: max {worst:g} quantisation steps")
        if worst > SPEC_GATE_STEPS:
            bad = max(steps, key=steps.get)
            raise ExportError(
                f"{name} int8 disagrees with the numpy integer spec on {bad!r} by {worst:g} "
                f"quantisation steps (gate {SPEC_GATE_STEPS}); refusing to write a wrong "
                "bundle. Please report it."
            )
        out[f"{name}/int8"] = {"max_spec_steps": worst}
    return out
