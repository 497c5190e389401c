"""Exports, natively on x86 (needs torch), the bundles the arm64 check runs: the models of the
test zoo (tests/models.py) listed below, among them those the runtime tests use, each in float
(NAME.rnnedge) and in full int8 (NAME_int8.rnnedge, calibrated here), so that every int8 file
meets arm64's kernels.

    python boards/arm64/export_bundles.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
# gru, lstm_2layer and state_copies_input: tests/runtime/test_runtime.py and
# tests/runtime/test_no_torch.py use them; the rest cover every RNN kind, explicit and nested
# states, a conv front end and elementwise math (every model tests/export/test_tflite_fixed_point.py
# checks LiteRT's builtin kernels against the "tflite" spec on, among them)
ZOO = (
    "gru",
    "lstm_2layer",
    "lstm_proj",
    "rnn_relu",
    "rnn_tanh_2layer",
    "gru_explicit_state",
    "cells",
    "front_end",
    "math_head",
    "two_rnns",
    "state_copies_input",
)
# full int8 of every zoo model above (the demo's digits bundle has its own): the float LSTM
# cell meets arm64's own XNNPACK tanh, the int8 kernels their arm64 requantisation. The
# float bundles stay float only (tests/runtime/test_runtime.py expects gru without int8).
INT8 = ZOO
INT8_SUFFIX = "_int8"
CALIB_SEQS, CALIB_STEPS = 8, 200


def _calibration(example: object) -> list[np.ndarray]:
    """Seeded N(0, 1) sequences of the data input (the first of a tuple example: the others
    are states)."""
    x = example[0] if isinstance(example, tuple) else example
    rng = np.random.default_rng(0)
    shape = (CALIB_STEPS, *tuple(x.shape))
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(CALIB_SEQS)]


def main(out: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from models import build

    from rnnedge.export.pipeline import export_bundle

    for name in ZOO:
        model, example = build(name)
        path = export_bundle(model, example, out / f"{name}.rnnedge")
        print(f"  exported {path}", flush=True)
    for name in INT8:
        model, example = build(name)
        path = export_bundle(
            model,
            example,
            out / f"{name}{INT8_SUFFIX}.rnnedge",
            quantize="int8",
            calibration=_calibration(example),
        )
        print(f"  exported {path}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
