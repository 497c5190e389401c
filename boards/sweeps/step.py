"""Per-step cost of the runtime against the raw interpreter calls and PyTorch, in one run.

    python -m rnnedge.boards.sweeps.step [--steps 5000] [--hidden 128] [--streams 64]

Model: GRU(40 -> H) + Linear(H -> 10), batch 1, one time step per call, state fed back (the
setting of ../shared/notes/measurements.md). Every figure is p50 / p99 in microseconds over
`--steps` timed calls after a warm-up, one thread; each measurement is repeated in
`--rounds` interleaved rounds and the round with the median p50 is reported, because two
cores shared with other work drift. Needs torch (to export and for the PyTorch peer).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnnedge.boards.bench.latency import LatencyStats, measure, raw_call, stream_call
from rnnedge.runtime import available_backends, load
from rnnedge.runtime.model import Model

FEATURES, CLASSES = 40, 10


def _model(hidden: int):
    import torch
    from torch import nn

    class Kws(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(FEATURES, hidden, batch_first=True)
            self.head = nn.Linear(hidden, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.gru(x)[0])

    torch.manual_seed(0)
    return Kws().eval()


def torch_cell_step(model) -> Callable[[], object]:
    """PyTorch eager: a GRUCell with the model's weights and the head, state fed back."""
    import torch

    torch.set_num_threads(1)
    cell = torch.nn.GRUCell(FEATURES, model.gru.hidden_size)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data = getattr(model.gru, f"{name}_l0").data
    x = torch.zeros(1, FEATURES)
    h = [torch.zeros(1, model.gru.hidden_size)]

    def step() -> None:
        with torch.no_grad():
            h[0] = cell(x, h[0])
            model.head(h[0])

    return step


def ort_iobinding_call(model: Model, x: np.ndarray) -> Callable[[], object]:
    """The fastest raw onnxruntime pattern found: two IOBindings with swapped state buffers
    (the backend's OrtRunner, without the Stream around it)."""
    runner = model.backend.runner()
    return lambda: runner.step(x)


def streams_call(model: Model, n: int) -> Callable[[], object]:
    many = model.streams(n)
    x = np.zeros((n, 1, FEATURES), np.float32)
    return lambda: many.step(x)


def run_call(model: Model, steps: int = 100) -> Callable[[], object]:
    stream = model.stream()
    xs = np.zeros((steps, 1, 1, FEATURES), np.float32)
    return lambda: stream.run(xs)


def _median_round(
    calls: dict[str, Callable[[], object]], steps: int, rounds: int
) -> dict[str, LatencyStats]:
    results: dict[str, list[LatencyStats]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, call in calls.items():  # interleaved: every path sees the same drift
            results[name].append(measure(call, steps))
    return {k: sorted(v, key=lambda s: s.p50)[len(v) // 2] for k, v in results.items()}


def bench(steps: int, hidden: int, n_streams: int, rounds: int) -> str:
    import torch

    from rnnedge.export.pipeline import export_bundle

    model = _model(hidden)
    path = export_bundle(
        model, torch.zeros(1, 1, FEATURES), Path(tempfile.mkdtemp()) / "kws.rnnedge"
    )
    x = np.zeros((1, 1, FEATURES), np.float32)
    calls: dict[str, Callable[[], object]] = {
        "pytorch eager GRUCell + head": torch_cell_step(model)
    }
    models = {b: load(path, backend=b) for b in available_backends()}
    for name, m in models.items():
        calls[f"rnnedge {name} step (checked)"] = stream_call(m, x)
        calls[f"rnnedge {name} step (unchecked)"] = stream_call(m, x, checked=False)
        calls[f"rnnedge {name} {n_streams} streams, one call"] = streams_call(m, n_streams)
    if "litert" in models:
        calls["raw litert set_tensor+invoke+get_tensor"] = raw_call(models["litert"], x)
    if "onnxruntime" in models:
        calls["raw onnxruntime session.run"] = raw_call(models["onnxruntime"], x)
        calls["raw onnxruntime IOBinding (swapped state)"] = ort_iobinding_call(
            models["onnxruntime"], x
        )
    stats = _median_round(calls, steps, rounds)
    chunk = {f"rnnedge {n} run(100 steps)": run_call(m) for n, m in models.items()}
    stats |= _median_round(chunk, max(steps // 100, 50), rounds)
    return _report(stats, hidden, n_streams)


def _report(stats: dict[str, LatencyStats], hidden: int, n: int) -> str:
    torch_p50 = stats["pytorch eager GRUCell + head"].p50
    lines = [f"GRU({FEATURES} -> {hidden}) + Linear({hidden} -> {CLASSES}), one thread", ""]
    lines.append(f"{'path':46s} {'p50 us':>9s} {'p99 us':>9s} {'vs torch':>9s}")
    for name, s in stats.items():
        per = f"  ({s.p50 / n:.2f} us per stream-step)" if "streams" in name else ""
        per = f"  ({s.p50 / 100:.2f} us per step)" if "run(100" in name else per
        lines.append(f"{name:46s} {s.p50:9.2f} {s.p99:9.2f} {torch_p50 / s.p50:8.2f}x{per}")
    lines += ["", "ratios of p50 (the issue's targets in brackets):"]
    for label, a, b, target in _ratios(stats, n):
        value = stats[a].p50 / stats[b].p50 / (n if "streams" in a else 1)
        lines.append(f"  {label:58s} {value:6.3f}  [{target}]")
    return "\n".join(lines)


def _ratios(stats: dict[str, LatencyStats], n: int) -> list[tuple[str, str, str, str]]:
    """(label, numerator path, denominator path, target) for every pair present."""
    out = []
    torch_path = "pytorch eager GRUCell + head"
    for b in ("litert", "onnxruntime", "numpy"):
        if f"rnnedge {b} step (checked)" in stats:
            out.append(
                (f"torch eager / {b} checked", torch_path, f"rnnedge {b} step (checked)", ">= 5")
            )
    raws = {
        "litert": ["raw litert set_tensor+invoke+get_tensor"],
        "onnxruntime": ["raw onnxruntime session.run", "raw onnxruntime IOBinding (swapped state)"],
    }
    for b, candidates in raws.items():
        present = [c for c in candidates if c in stats]
        if not present:
            continue
        fastest = min(present, key=lambda k: stats[k].p50)
        for mode in ("checked", "unchecked"):
            label = f"{b} {mode} / fastest raw call"
            out.append((label, f"rnnedge {b} step ({mode})", fastest, "<= 1.15"))
    for b in ("litert", "onnxruntime", "numpy"):
        key = f"rnnedge {b} {n} streams, one call"
        if key in stats:
            label = f"{b}: per stream-step in {n} streams / single step"
            out.append((label, key, f"rnnedge {b} step (checked)", "<= 0.15"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--streams", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    print(bench(a.steps, a.hidden, a.streams, a.rounds))


if __name__ == "__main__":
    main()
