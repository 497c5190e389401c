"""Every check that refuses to write a wrong bundle, one function each. A bundle that fails a
gate is never written: a backend far from PyTorch is an emitter bug, not rounding, and an int8
file that strays from the numpy integer spec computes something else.

  parity          each backend in one precision against PyTorch's golden vectors
  int8_parity     parity for int8 plus the budget `rnnedge check` holds the precision to
  spec_agreement  the full-int8 files against the numpy integer spec, in quantisation steps
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rnnedge.errors import ExportError, RnnedgeError
from rnnedge.progress import Progress
from rnnedge.runtime.backends import BACKENDS, available_backends, offers, open_backend
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.data import golden_sequences
from rnnedge.runtime.check.run import CheckConfig, run_check, run_streams
from rnnedge.runtime.check.steps import steps_apart
from rnnedge.runtime.manifest import Manifest

# Export refuses to write a bundle whose backend disagrees with PyTorch by more than this
# (relative to max(1, |reference|)): such a bundle would be a silent wrong answer. The tests
# hold every backend to 1e-5; this gate catches gross emitter bugs on the user's own model.
FLOAT_GATE = 1e-4
# int8-dynamic gets its own gate against PyTorch: a backend beyond it is an emitter bug, not
# rounding (measured errors on the zoo and the demo are 1e-3..1e-2 scaled; a wrong weight
# layout gives errors of order 1). Full int8 is not gated against PyTorch: data beyond the
# calibrated range clips, legitimately, by any amount (export warns about it); its files are
# held to the numpy integer spec instead, in quantisation steps of each output: measured
# 0 steps for LiteRT (<= 1 on the LSTM cell's tanh), <= 2 for onnxruntime.
INT8_GATES = {"int8-dynamic": 0.1, "int8": float("inf")}
SPEC_GATE_STEPS = 8
BUDGET_FLOOR = 1e-3  # the budget is 2x the measured error plus this, so check has headroom
BUDGET_STEPS = 2000


def run_golden(bundle: Bundle, backend_name: str, precision: str = "float") -> dict[str, float]:
    """Max error of one backend against golden.npz per output (states included), relative to
    max(1, |reference|) at each step, run through the runner a Stream deploys with (its own
    interpreter or IO bindings), the state carried inside it as in deployment."""
    runner = open_backend(bundle, backend_name, precision).runner()
    seqs, refs = golden_sequences(bundle)
    got = run_streams(bundle, runner, seqs)
    worst = {}
    for name, runs in got.items():
        per_step = [
            np.abs(a - r).reshape(len(r), -1).max(axis=1)
            / np.maximum(1.0, np.abs(r).reshape(len(r), -1).max(axis=1))
            for a, r in zip(runs, refs[name])
        ]
        worst[name] = float(max((e.max(initial=0.0) for e in per_step), default=0.0))
    return worst


def parity(
    bundle: Bundle, precision: str, gate: float, say: Progress
) -> tuple[dict[str, Any], float]:
    """Each backend's max error against PyTorch's golden vectors in one precision, as manifest
    parity entries, and the worst of them. A backend beyond `gate` is an emitter bug: refuse
    to write the bundle rather than ship a silent wrong answer."""
    results: dict[str, Any] = {}
    worst_all = 0.0
    installed = available_backends()
    for name in BACKENDS:
        if name not in installed:
            say(f"  {name}/{precision}: skipped (not installed)")
            continue
        if not offers(bundle, name, precision):
            say(f"  {name}/{precision}: skipped (no C for this model, see above)")
            continue
        try:
            worst = run_golden(bundle, name, precision)
        except RnnedgeError as e:  # a file its interpreter cannot load or run is a bug
            raise ExportError(
                f"{name} cannot run the {precision} model it was given: {e}; refusing to "
                "write a bundle it cannot run. Please report it."
            ) from e
        err = max(worst.values(), default=0.0)
        results[f"{name}/{precision}"] = {"max_rel_err": err}
        say(f"  {name}/{precision}: max error vs PyTorch {err:.2e}")
        if err > gate:
            bad = max(worst, key=worst.get)
            raise ExportError(
                f"{name} {precision} disagrees with PyTorch on {bad!r} by {err:.2e} "
                f"(gate {gate:g}); refusing to write a wrong bundle. Please report it."
            )
        worst_all = max(worst_all, err)
    return results, worst_all


def int8_parity(bundle: Bundle, manifest: Manifest, precision: str, say: Progress) -> Manifest:
    """Each backend's error against PyTorch on the golden sequences, recorded in
    manifest.parity, and the budget `rnnedge check` holds the precision to. The budget also
    covers one long stream (the golden inputs looped for BUDGET_STEPS steps, state carried):
    short golden sequences miss the tail of the rounding error that a GRU's slow units
    accumulate (the digits demo in int8-dynamic: 0.058 over 4 x 8 steps, 0.15 within the
    first 500 looped). Full int8 is also held to the numpy integer spec (spec_agreement)."""
    results, worst = parity(bundle, precision, INT8_GATES[precision], say)
    if precision == "int8":
        for key, entry in spec_agreement(bundle, say).items():
            results[key] = {**results.get(key, {}), **entry}
    say(f"  measuring {precision} over {BUDGET_STEPS} looped steps for its check budget")
    # each output and state gets its own budget from its own error, on what `rnnedge check`
    # runs by default (golden.npz) and on the long stream: one shared budget was set by the
    # worst of them (a state), which let the others err by 10x their own error unnoticed
    errors: dict[str, float] = {}
    for steps in (None, BUDGET_STEPS):
        report = run_check(bundle, CheckConfig(precisions=(precision,), steps=steps))
        for o in (o for r in report.results if r.precision == precision for o in r.outputs):
            errors[o.name] = max(errors.get(o.name, 0.0), o.scaled_abs_err)
    worst = max(worst, *errors.values(), 0.0)
    own = {f"scaled_abs_err@{k}": 2 * v + BUDGET_FLOOR for k, v in errors.items()}
    budget = {"scaled_abs_err": 2 * worst + BUDGET_FLOOR, **own}
    budgets = {**manifest.budgets, precision: budget}
    return dataclasses.replace(manifest, parity={**manifest.parity, **results}, budgets=budgets)


def spec_agreement(bundle: Bundle, say: Progress) -> dict[str, dict[str, float]]:
    """The int8 files against the numpy integer spec on the golden sequences, given the same
    input and state at every step: the max difference in quantisation steps of each integer
    output. Beyond SPEC_GATE_STEPS the file computes something else: refuse the bundle."""
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
