"""The gates of an offline bundle: the whole program, on every installed backend, against
PyTorch run over each whole golden sequence. As for streaming bundles (export/gates.py), a
float backend beyond FLOAT_GATE is an emitter bug and nothing is written; int8 records its
error and the budget `rnnedge check` holds it to."""

from __future__ import annotations

import dataclasses

from rnnedge.errors import ExportError, RnnedgeError
from rnnedge.export.gates import BUDGET_FLOOR, FLOAT_GATE, INT8_GATES
from rnnedge.progress import Progress
from rnnedge.runtime.backends import BACKENDS, available_backends
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.metrics import output_metrics
from rnnedge.runtime.check.offline import offline_golden, program_outputs
from rnnedge.runtime.manifest import Manifest
from rnnedge.runtime.offline import OfflineBackend


def offline_gates(bundle: Bundle, quantize: str, say: Progress) -> Manifest:
    seqs, refs = offline_golden(bundle)
    manifest = bundle.manifest
    for precision in ("float", *(() if quantize == "none" else (quantize,))):
        gate = FLOAT_GATE if precision == "float" else INT8_GATES[precision]
        worst_all = 0.0
        for name in [b for b in BACKENDS if b in available_backends()]:
            try:
                got = program_outputs(OfflineBackend(bundle, name, precision), seqs)
            except RnnedgeError as e:
                raise ExportError(
                    f"{name} cannot run the {precision} offline program: {e}; refusing to "
                    "write a bundle it cannot run. Please report it."
                ) from e
            errs = {n: output_metrics(n, "output", got[n], refs[n], 1).scaled_abs_err for n in got}
            worst = max(errs.values(), default=0.0)
            say(f"  {name}/{precision}: max error vs PyTorch {worst:.2e}")
            if not worst <= gate:
                raise ExportError(
                    f"{name} {precision} offline program disagrees with PyTorch on "
                    f"{max(errs, key=errs.get)!r} by {worst:.2e} (gate {gate:g}); refusing to "
                    "write a wrong bundle. Please report it."
                )
            manifest = dataclasses.replace(
                manifest, parity={**manifest.parity, f"{name}/{precision}": {"max_rel_err": worst}}
            )
            worst_all = max(worst_all, worst)
        if precision != "float":
            budget = {"scaled_abs_err": 2 * worst_all + BUDGET_FLOOR}
            manifest = dataclasses.replace(
                manifest, budgets={**manifest.budgets, precision: budget}
            )
    return manifest
