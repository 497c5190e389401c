"""`rnnedge bench` on an offline bundle (runtime/stages.py): the cost of model.run over a whole
sequence, per sequence and per step, for a few sequence lengths. One thread, back to back;
p50/p90/p99 over repeated runs after a warm-up (offline programs are not paced: they run when
the whole sequence is there)."""

from __future__ import annotations

import time

import numpy as np

from rnnedge.boards.bench.config import BenchConfig
from rnnedge.progress import Progress
from rnnedge.runtime import load
from rnnedge.runtime.backends import available_backends
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.check.offline import precisions_held

LENGTHS = (50, 300)
MIN_RUNS = 5


def bench_offline(
    cfg: BenchConfig, lengths: tuple[int, ...] = LENGTHS, progress: Progress | None = None
) -> str:
    say = progress or (lambda _m: None)
    bundle = read_bundle(cfg.bundle)
    backends = cfg.backends or tuple(available_backends())
    precisions = cfg.precisions or tuple(precisions_held(bundle))
    rng = np.random.default_rng(0)
    shape = bundle.manifest.step_input.shape
    lines = [
        f"{bundle.path}: offline program, {len(bundle.manifest.stages)} stages",
        f"{'backend':<12} {'precision':<10} {'T':>5} {'ms/sequence p50/p90/p99':>26} "
        f"{'us/step p50':>12} {'runs':>5}",
    ]
    for backend in backends:
        for precision in precisions:
            model = load(bundle.path, backend=backend, precision=precision)
            for steps in lengths:
                say(f"bench {backend}/{precision} T={steps}")
                xs = rng.standard_normal((steps, *shape)).astype(np.float32)
                times = _time(model.run, xs, cfg)
                p50, p90, p99 = (float(np.percentile(times, q)) * 1e3 for q in (50, 90, 99))
                lines.append(
                    f"{backend:<12} {precision:<10} {steps:>5} "
                    f"{f'{p50:.2f} / {p90:.2f} / {p99:.2f}':>26} "
                    f"{p50 * 1e3 / steps:>12.1f} {len(times):>5}"
                )
    return "\n".join(lines)


def _time(run, xs: np.ndarray, cfg: BenchConfig) -> np.ndarray:
    """Seconds per run: warmed up, then at least MIN_RUNS x rounds runs and cfg.seconds."""
    warm = time.perf_counter()
    while time.perf_counter() - warm < min(cfg.warmup_seconds, 0.5):
        run(xs)
    run(xs)
    times = []
    start = time.perf_counter()
    while len(times) < MIN_RUNS * cfg.rounds or time.perf_counter() - start < cfg.seconds:
        t = time.perf_counter()
        run(xs)
        times.append(time.perf_counter() - t)
    return np.array(times)
