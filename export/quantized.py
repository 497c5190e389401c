"""The int8 parts of export_bundle: calibrate, plan, emit, write quant.json (the int8 gates
are in gates.py).

Called from pipeline.py; each function takes values and returns new ones (the manifest and
the file dict are replaced, never edited). Two precisions:
  int8-dynamic  int8 weights, float activations (quantize/int8_dynamic.py)
  int8          full integer: int8 activations from calibration, int32 biases, float LSTM
                cell (quantize/int8.py); checked against the numpy integer spec
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from rnnedge.errors import CalibrationRangeWarning
from rnnedge.export.c import bundle_c_files
from rnnedge.export.int8_fidelity import fidelity_record, say_fidelity, say_sizes
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.progress import Progress
from rnnedge.quantize.calibrate import Overrun, calibrate, range_overruns
from rnnedge.quantize.fidelity import Judged, split_held_out
from rnnedge.quantize.int8_dynamic import plan_int8_dynamic
from rnnedge.quantize.mixed import Int8Budget, plan_within_budget
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
RANGE_WARNING = 0.10  # golden data beyond the calibrated range by this fraction is reported


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
    budget: Int8Budget | None = None,
    strict: bool = False,
    judged: Judged = None,
) -> tuple[Manifest, dict[str, bytes]]:
    ranges, overruns, fidelity = None, [], {}
    if precision == "int8":
        # calibration is there: ExportConfig refuses int8 without enough sequences; every
        # fifth sequence is held out to judge int8 against float on unseen data
        part, held = split_held_out(calib)
        ranges = calibrate(graph, part, percentile=percentile, progress=say)
        budget = budget or Int8Budget()
        mixed = plan_within_budget(
            graph, ranges, part, held, budget, strict=strict, say=say, judged=judged
        )
        plan, fidelity = mixed.plan, fidelity_record(mixed, budget, strict)
        say_fidelity(mixed, say)
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
    new.update(bundle_c_files(graph, plan, say))  # the native backend's C
    models = (
        *manifest.models,
        ModelFile(path=f"model.{precision}.onnx", backend="onnx", precision=precision),
        ModelFile(path=f"model.{precision}.tflite", backend="tflite", precision=precision),
    )
    say_sizes(new, precision, say)
    manifest = dataclasses.replace(manifest, models=models, int8_scheme=SCHEMES[precision])
    return dataclasses.replace(manifest, int8_fidelity=fidelity), new


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
