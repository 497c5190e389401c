"""`rnnedge check`'s second question for an int8 file: does its interpreter still compute the
numpy integer spec (runtime/quant/int8.py)? A session whose runtime rewrote the integer
graph (onnxruntime's WeightBiasQuantization did: see backends/ort_numerics.py) can stay
inside the float budget on the check's data and still compute something else; this names it.

Both sides get the same input and incoming state at every step (steps.py), so the difference
is one step's arithmetic, in quantisation steps of each integer output.
"""

from __future__ import annotations

import platform

import numpy as np

from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.steps import steps_apart

# Measured: LiteRT 0 steps from the spec, onnxruntime <= 2 (its sub and the LSTM cell's
# float island round differently at ties); beyond this a file computes something else.
SPEC_STEPS_LIMIT = 2.0
SPEC_CHECK_STEPS = 512  # enough steps to visit the integer ranges; keeps check fast


def spec_rounding(backend: str, machine: str | None = None) -> str:
    """The spec's rounding `backend` int8 is held to on this machine (docs/int8.md): LiteRT on
    arm64 rounds int8 in TFLite's fixed point (its XNNPACK kernels there equal the builtin
    ones, docs/arm64.md); everywhere else the int8 kernels requantize in float32."""
    arm = (machine or platform.machine()).lower() in ("aarch64", "arm64")
    return "tflite" if backend == "litert" and arm else "fp32"


def spec_drift(bundle: Bundle, backend: str, inputs: tuple[np.ndarray, ...]) -> str:
    """ "" when `backend`'s int8 file computes the spec within SPEC_STEPS_LIMIT steps on
    `inputs` (the first SPEC_CHECK_STEPS steps of them), else one line saying where not."""
    if backend == "numpy" or "quant.json" not in bundle.files:
        return ""
    seqs, left = [], SPEC_CHECK_STEPS
    for xs in inputs:
        if left <= 0:
            break
        seqs.append(xs[:left])
        left -= len(seqs[-1])
    steps = steps_apart(bundle, backend, sequences=seqs, rounding=spec_rounding(backend))
    if not steps or max(steps.values()) <= SPEC_STEPS_LIMIT:
        return ""
    bad = max(steps, key=steps.get)
    return (
        f"{backend} int8 session drifts from the numpy integer spec on {bad!r} by "
        f"{steps[bad]:g} quantisation steps (limit {SPEC_STEPS_LIMIT:g}): the interpreter "
        "computes something other than the file says"
    )
