"""Per-step cost of stream.run with K-step chunk models, K = 1 (no chunk: one call per step),
4 and 16, on each backend, float and int8.

    python -m rnnedge.boards.sweeps.chunk [--steps 1024] [--rounds 5]     (make bench-chunk)

Models: the demo's architecture (GRU 8 -> 64 + Linear 64 -> 10) and GRU 40 -> 128 + Linear
128 -> 10, random weights (cost does not depend on them), int8 calibrated on random inputs.
Each figure is microseconds per step of stream.run over `--steps` steps (state carried, one
thread): the median (and, the least disturbed by other work, the minimum) of `--rounds`
interleaved rounds after a warm-up. numpy has no chunk path
(its chunk would be the same loop), so its K > 1 columns repeat K = 1. Needs torch to export.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnedge.runtime import available_backends, load

CHUNKS = (1, 4, 16)
MODELS = {"demo GRU 8->64": (8, 64), "GRU 40->128": (40, 128)}


def _model(features: int, hidden: int):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(features, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.gru(x)[0])

    torch.manual_seed(0)
    return Net().eval()


def _export(features: int, hidden: int, k: int, out: Path) -> Path:
    import torch

    from rnnedge.export.pipeline import export_bundle

    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((100, 1, 1, features)).astype(np.float32) for _ in range(4)]
    return export_bundle(
        _model(features, hidden), torch.zeros(1, 1, features), out=out, quantize="int8",
        calibration=calib, chunk=k if k > 1 else None,
    )  # fmt: skip


def _per_step_us(path: Path, backend: str, precision: str, xs: np.ndarray, rounds: int) -> list:
    stream = load(path, backend=backend, precision=precision).stream()
    stream.run(xs[:64])  # warm-up
    times = []
    for _ in range(rounds):
        stream.reset()
        start = time.perf_counter()
        stream.run(xs)
        times.append((time.perf_counter() - start) / len(xs) * 1e6)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    print(f"us per step of stream.run over {a.steps} steps, median [min] of {a.rounds} rounds")
    print(f"{'model':<16} {'backend':<12} {'precision':<9} " + " ".join(
        f"{f'K={k}':>13}" for k in CHUNKS) + "   speed-up K=4 / K=16 (median)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for label, (features, hidden) in MODELS.items():
            paths = {k: _export(features, hidden, k, Path(tmp) / f"{hidden}_{k}") for k in CHUNKS}
            xs = np.random.default_rng(1).standard_normal((a.steps, 1, 1, features))
            xs = xs.astype(np.float32)
            for backend in available_backends():
                for precision in ("float", "int8"):
                    rows: dict[int, list] = {k: [] for k in CHUNKS}
                    for _ in range(a.rounds):  # interleaved: drift hits every K alike
                        for k in CHUNKS:
                            rows[k] += _per_step_us(paths[k], backend, precision, xs, 1)
                    med = {k: float(np.median(v)) for k, v in rows.items()}
                    low = {k: float(np.min(v)) for k, v in rows.items()}
                    print(
                        f"{label:<16} {backend:<12} {precision:<9} "
                        + " ".join(f"{f'{med[k]:.1f} [{low[k]:.1f}]':>13}" for k in CHUNKS)
                        + f"   {med[1] / med[4]:.2f}x / {med[1] / med[16]:.2f}x",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
