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


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    p50: float
    p90: float
    p99: float
    mean: float
    steps: int

    @classmethod
    def of(cls, times_ns: np.ndarray) -> LatencyStats:
        us = np.asarray(times_ns, np.float64) / 1e3
        p50, p90, p99 = np.percentile(us, [50, 90, 99])
        return cls(
            p50=float(p50), p90=float(p90), p99=float(p99), mean=float(us.mean()), steps=len(us)
        )


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


def stream_call(model: Model, x: np.ndarray, *, checked: bool = True) -> Callable[[], object]:
    stream = model.stream(checked=checked)
    return lambda: stream.step(x)


def raw_call(model: Model, x: np.ndarray) -> Callable[[], object] | None:
    """The bare interpreter call pattern on the same model file, state fed back, or None for
    backends that have no separate interpreter (numpy)."""
    g = model.bundle.graph
    n_data = len(g.data_outputs)
    states = [g.constants[s.init].copy() for s in g.states]
    if model.backend_name == "litert":
        interp = model.backend._interp
        ins, outs = model.backend._in, model.backend._out

        def litert() -> None:
            interp.set_tensor(ins[0], x)
            for i, s in zip(ins[1:], states):
                interp.set_tensor(i, s)
            interp.invoke()
            res = [interp.get_tensor(o) for o in outs]
            states[:] = res[n_data:]

        return litert
    if model.backend_name == "onnxruntime":
        session = model.backend._session
        names = [t.name for t in g.inputs]

        def ort() -> None:
            res = session.run(None, dict(zip(names, [x, *states])))
            states[:] = res[n_data:]

        return ort
    return None
