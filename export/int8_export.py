"""The int8-dynamic part of export_bundle: plan, emit, write quant.json, measure parity.

Called from pipeline.py; each function takes values and returns new ones (the manifest and
the file dict are replaced, never edited).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np

from rnnedge.export.emit_onnx import emit_onnx
from rnnedge.export.emit_tflite import emit_tflite
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.plan import plan_int8_dynamic
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import Manifest, ModelFile

PRECISION = "int8-dynamic"
SCHEME = "rnnedge int8-dynamic v1: int8 weights per output channel, symmetric; float activations"
# int8-dynamic is lossy, so its gate is its own: a backend whose error against PyTorch
# (scaled by max(1, |ref|)) exceeds this is an emitter bug, not rounding. Measured errors on
# the zoo and the demo are 1e-3..1e-2; a wrong weight layout gives errors of order 1.
INT8_DYNAMIC_GATE = 0.1
BUDGET_FLOOR = 1e-3  # the budget is 2x the measured error plus this, so check has headroom
BUDGET_STEPS = 2000

Progress = Callable[[str], None]


def add_int8_dynamic(
    graph: Graph,
    calib: list[np.ndarray] | None,
    manifest: Manifest,
    files: dict[str, bytes],
    say: Progress,
) -> tuple[Manifest, dict[str, bytes]]:
    plan = plan_int8_dynamic(graph)
    say(f"int8-dynamic: {len(plan.quantized)} weights int8, {len(plan.left_float)} left float")
    doc = json.loads(plan.to_json())
    if calib is not None:  # activation ranges: unused by int8-dynamic, recorded for inspect
        doc["calibration"] = calibrate(graph, calib, progress=say).to_json()
    new = dict(files)
    new["quant.json"] = (json.dumps(doc, indent=1) + "\n").encode()
    new[f"model.{PRECISION}.onnx"] = emit_onnx(graph, plan)
    new[f"model.{PRECISION}.tflite"] = emit_tflite(graph, plan)
    models = (
        *manifest.models,
        ModelFile(path=f"model.{PRECISION}.onnx", backend="onnx", precision=PRECISION),
        ModelFile(path=f"model.{PRECISION}.tflite", backend="tflite", precision=PRECISION),
    )
    return dataclasses.replace(manifest, models=models, int8_scheme=SCHEME), new


def int8_dynamic_parity(bundle: Bundle, manifest: Manifest, say: Progress) -> Manifest:
    """Each backend's int8-dynamic error against PyTorch on the golden sequences, recorded in
    manifest.parity, and the budget `rnnedge check` holds int8-dynamic to. The budget also
    covers one long stream (the golden inputs looped for BUDGET_STEPS steps, state carried):
    short golden sequences miss the tail of the rounding error that a GRU's slow units
    accumulate (the digits demo: 0.058 over 4 x 8 steps, 0.15 within the first 500 looped)."""
    from rnnedge.export.pipeline import parity
    from rnnedge.runtime.check import CheckConfig, run_check

    results, worst = parity(bundle, PRECISION, INT8_DYNAMIC_GATE, say)
    say(f"  measuring {PRECISION} over {BUDGET_STEPS} looped steps for its check budget")
    report = run_check(bundle, CheckConfig(precisions=(PRECISION,), steps=BUDGET_STEPS))
    long_run = max(
        (o.scaled_abs_err for r in report.results if r.precision == PRECISION for o in r.outputs),
        default=0.0,
    )
    worst = max(worst, long_run)
    budgets = {**manifest.budgets, PRECISION: {"scaled_abs_err": 2 * worst + BUDGET_FLOOR}}
    return dataclasses.replace(manifest, parity={**manifest.parity, **results}, budgets=budgets)
