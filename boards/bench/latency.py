"""Per-step latency of a rnnedge stream and of the raw interpreter call on the same file.

Each measurement times single calls with perf_counter_ns after a warm-up, state fed back
from step to step as in deployment, and reports percentiles in microseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnedge.runtime.model import Model

# A percentile means something only over enough samples to hold at least one value beyond
# it: p99 needs 100 steps, p99.9 needs 1000. Reports show "-" (JSON null) below that.
MIN_SAMPLES = {"p50": 1, "p90": 10, "p99": 100, "p999": 1000}


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    """Microseconds per call. Percentiles interpolate linearly between the closest ranks
    (numpy's default): over sorted samples s[0..n-1], pq = s[i] + f (s[i+1] - s[i]) with
    i + f = q (n - 1). std is the population standard deviation."""

    p50: float
    p90: float
    p99: float
    mean: float
    steps: int
    p999: float = 0.0
    std: float = 0.0
    min: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, times_ns: np.ndarray) -> LatencyStats:
        us = np.asarray(times_ns, np.float64) / 1e3
        if us.size == 0:
            raise ValueError("LatencyStats.of: no samples")
        p50, p90, p99, p999 = (float(v) for v in np.percentile(us, [50, 90, 99, 99.9]))
        return cls(
            p50=p50,
            p90=p90,
            p99=p99,
            p999=p999,
            mean=float(us.mean()),
            steps=int(us.size),
            std=float(us.std()),
            min=float(us.min()),
            max=float(us.max()),
        )

    def reported(self) -> dict[str, float | None]:
        """Every statistic by name, with percentiles lacking samples (see MIN_SAMPLES) None."""
        d: dict[str, float | None] = {
            k: getattr(self, k) for k in ("p50", "p90", "p99", "p999", "mean", "std", "min", "max")
        }
        for k, n in MIN_SAMPLES.items():
            if self.steps < n:
                d[k] = None
        return d


def measure(call: Callable[[], object], steps: int, warmup: int = 500) -> LatencyStats:
    for _ in range(warmup):
        call()
    times = np.empty(steps, np.int64)
    clock = time.perf_counter_ns
    for i in range(steps):
        t0 = clock()
        call()
        times[i] = clock() - t0
    return LatencyStats.of(times)


def warm_up(call: Callable[[], object], steps: int, seconds: float) -> int:
    """Calls back to back until at least `steps` calls AND `seconds` have passed; returns the
    number of calls made."""
    clock, n = time.perf_counter, 0
    end = clock() + seconds
    while n < steps or clock() < end:
        call()
        n += 1
    return n


def time_calls(
    call: Callable[[], object], *, steps: int, seconds: float, hop_s: float = 0.0
) -> np.ndarray:
    """Durations in ns of single calls, until at least `steps` calls AND `seconds` have
    passed. hop_s > 0 paces the calls: call i starts at t0 + i * hop_s (as a real stream
    would), sleeping in between, so caches and branch predictors go cold as they do in
    deployment; only the call itself is timed."""
    clock = time.perf_counter_ns
    times: list[int] = []
    hop_ns = int(hop_s * 1e9)
    start = clock()
    end = start + int(seconds * 1e9)
    i = 0
    while i < steps or clock() < end:
        if hop_ns:
            wait = start + i * hop_ns - clock()
            if wait > 0:
                time.sleep(wait / 1e9)
        t0 = clock()
        call()
        times.append(clock() - t0)
        i += 1
    return np.asarray(times, np.int64)


def stream_call(model: Model, x: np.ndarray, *, checked: bool = True) -> Callable[[], object]:
    stream = model.stream(checked=checked)
    return lambda: stream.step(x)


def raw_call(model: Model, x: np.ndarray) -> Callable[[], object] | None:
    """The bare interpreter call pattern on the same model file, state fed back, or None for
    backends that have no separate interpreter (numpy): for litert set_tensor + invoke +
    get_tensor on the backend's own interpreter (LiteRTRunner), for onnxruntime session.run
    with a feed dict."""
    g = model.bundle.graph
    states = [g.constants[s.init].copy() for s in g.states]
    backend = model.backend
    if model.backend_name == "litert":
        from rnnedge.runtime.backends.litert_backend import LiteRTRunner

        ins, outs, n_data = backend.input_indices, backend.output_indices, len(g.data_outputs)
        runner = LiteRTRunner(backend.interpreter, ins, outs, states, n_data=n_data)
        return lambda: runner.step(x)
    if model.backend_name == "onnxruntime":
        session, n_data = backend.session, len(g.data_outputs)
        names = [t.name for t in g.inputs]

        def ort() -> None:
            res = session.run(None, dict(zip(names, [x, *states])))
            states[:] = res[n_data:]

        return ort
    return None
