"""Exports, natively on x86 (needs torch), the bundles the arm64 check runs: some models of
the test zoo (tests/models.py), among them those the runtime tests use.

    python boards/arm64/export_bundles.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# gru and lstm_2layer: tests/test_runtime.py and tests/test_no_torch.py use them; the rest
# cover every RNN kind, explicit and nested states, a conv front end and elementwise math
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
)


def main(out: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from models import build

    from rnnedge.export.pipeline import export_bundle

    for name in ZOO:
        model, example = build(name)
        path = export_bundle(model, example, out / f"{name}.rnnedge")
        print(f"  exported {path}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
