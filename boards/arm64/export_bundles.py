"""Exports, natively on x86 (needs torch), the bundles the arm64 check runs: some models of
the test zoo (tests/models.py), among them those the runtime tests use.

    python boards/arm64/export_bundles.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
# gru, lstm_2layer and state_copies_input: tests/runtime/test_runtime.py and
# tests/runtime/test_no_torch.py use them; the rest cover every RNN kind, explicit and nested
# states, a conv front end and elementwise math
ZOO = (
    "gru",
    "lstm_2layer",
    "lstm_proj",
    "rnn_relu",
    "gru_explicit_state",
    "cells",
    "front_end",
    "math_head",
    "two_rnns",
    "state_copies_input",
)
INT8 = ("lstm_2layer",)


def main(out: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from models import build

    from rnnedge.export.pipeline import export_bundle

    for name in ZOO:
        model, example = build(name)
        path = export_bundle(model, example, out / f"{name}.rnnedge")
        print(f"  exported {path}", flush=True)
    # full int8 on an LSTM too (the demo's bundle is a GRU): its float cell meets arm64's own
    # XNNPACK tanh and its int8 kernels their arm64 requantisation
    for name in INT8:
        model, example = build(name)
        rng = np.random.default_rng(0)
        calib = [rng.standard_normal((200, *example.shape)).astype(np.float32) for _ in range(8)]
        path = export_bundle(
            model, example, out / f"{name}_int8.rnnedge", quantize="int8", calibration=calib
        )
        print(f"  exported {path}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
