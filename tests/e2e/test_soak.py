"""Soak: a million steps through each backend; RSS stays flat and outputs stay finite.

A runtime on a board runs for months. A leak of even 100 bytes per step is 100 MB per million
steps, so a million steps with RSS (VmRSS from /proc/self/status) sampled every 10,000 steps
after a warm-up shows any per-step leak far above noise. The state is carried across all the
steps, as in deployment, so a state that drifts to Inf/NaN fails too.

Run with `make test-slow` (or `pytest -m slow tests/e2e/test_soak.py -s` to see the figures).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import rnnedge
from rnnedge.runtime import available_backends

STEPS = 1_000_000
WARMUP = 50_000  # allocator pools, interpreter arenas and caches settle in the first steps
SAMPLE_EVERY = 10_000
RSS_BOUND_KIB = 4 * 1024  # growth allowed after warm-up: far below 1M steps x any real leak
# The numpy executor takes ~60 us per step for this model: 1M steps is about a minute;
# kept at the full million so every backend is held to the same bar.
STEPS_BY_BACKEND = {"numpy": STEPS}


def rss_kib() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backend", available_backends())
def test_a_million_steps_keep_rss_flat_and_outputs_finite(zoo_bundle, backend) -> None:
    steps = STEPS_BY_BACKEND.get(backend, STEPS)
    stream = rnnedge.load(zoo_bundle("gru")[0], backend=backend).stream()
    pool = np.random.default_rng(0).standard_normal((1000, 1, 1, 8)).astype(np.float32) * 3
    samples: list[tuple[int, int]] = []
    start = time.perf_counter()
    for i in range(steps):
        y = stream.step(pool[i % 1000])
        if not np.isfinite(y).all():
            raise AssertionError(f"{backend}: output went non-finite at step {i}: {y}")
        if i % SAMPLE_EVERY == 0:
            samples.append((i, rss_kib()))
    seconds = time.perf_counter() - start
    state = next(iter(stream.state.values()))
    assert np.isfinite(state).all()
    after = [kib for i, kib in samples if i >= WARMUP]
    growth = max(after) - after[0]
    print(
        f"\n{backend}: {steps} steps in {seconds:.0f} s ({seconds / steps * 1e6:.1f} us/step); "
        f"RSS at start {samples[0][1]} KiB, after warm-up {after[0]} KiB, "
        f"max {max(after)} KiB, end {after[-1]} KiB, growth {growth} KiB"
    )
    assert growth <= RSS_BOUND_KIB, samples
