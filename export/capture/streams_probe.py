"""The numeric half of the batching check: streams stacked into one batch must step exactly as
they step apart, over several steps with their states carried.

The states come from the model's own domain: each stream starts at the graph's initial state
and runs a few seeded random steps of its own first (a different number each, so the streams
differ). Probing with N(0, 1) states instead refused models whose state lives elsewhere: a
positive running variance under a sqrt gives NaN, a running max in a log-sum-exp overflows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rnnedge.errors import RnnedgeError
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, TensorSpec
from rnnedge.runtime.inputs import sample_input

STREAMS = 3
PROBE_STEPS = 6


class NotBatchable(Exception):
    pass


def check_independent(g: Graph, probe: tuple[np.ndarray, ...] | None = None) -> None:
    """Raises NotBatchable naming the first output whose batched value differs from the same
    streams stepped apart (NaN where both are NaN is no difference). The streams read the
    `probe` sequences (calibration data) when given, seeded random inputs after them."""
    ex = Executor(g)
    x = g.inputs[0]
    feed = _inputs(g, x, probe)
    states = [[g.constants[s.init].copy() for s in g.states] for _ in range(STREAMS)]
    for k in range(STREAMS):
        for _ in range(2 * k + 1):
            _, states[k] = _step(ex, g, next(feed[k]), states[k])
    batched = [
        np.concatenate([st[i] for st in states], axis=g.spec(s.input).batch_axis)
        for i, s in enumerate(g.states)
    ]
    for t in range(PROBE_STEPS):
        xs = [next(feed[k]) for k in range(STREAMS)]
        try:
            together, batched = _step(ex, g, np.concatenate(xs, axis=x.batch_axis), batched)
        except RnnedgeError as e:
            raise NotBatchable(f"the graph does not run at batch {STREAMS}: {e}") from e
        apart = []
        for k in range(STREAMS):
            outs, states[k] = _step(ex, g, xs[k], states[k])
            apart.append(outs)
        for spec in g.outputs:
            joined = np.concatenate([a[spec.name] for a in apart], axis=spec.batch_axis)
            got = together[spec.name]
            if got.shape != joined.shape or not np.allclose(
                got, joined, rtol=1e-5, atol=1e-6, equal_nan=True
            ):
                raise NotBatchable(
                    f"output {spec.name!r} of a batch differs from separate streams (at probe "
                    f"step {t}, states reached by stepping the model)"
                )


def _inputs(g: Graph, x: TensorSpec, probe: tuple[np.ndarray, ...] | None) -> list[Iterator]:
    """Per stream, its step inputs: a probe sequence of the step's size (stream k reads
    sequence k, cycling), then seeded random steps (N(0, 1), or ids for an integer input)."""
    usable = [a for a in (_as_steps(p, x) for p in probe or ()) if a is not None]

    def stream(k: int) -> Iterator[np.ndarray]:
        if usable:
            yield from usable[k % len(usable)][: 2 * STREAMS + PROBE_STEPS]
        rng = np.random.default_rng(k)
        while True:
            yield sample_input(g, x, rng)

    return [stream(k) for k in range(STREAMS)]


def _as_steps(seq: object, x: TensorSpec) -> np.ndarray | None:
    """(T, *shape) in the input's dtype, or None for what check_sequences will refuse later
    by name."""
    shape = x.shape
    try:
        a = np.asarray(seq, x.dtype)
    except (TypeError, ValueError):
        return None
    size = int(np.prod(shape))
    if a.size == 0 or a.size % size or not np.isfinite(a).all():
        return None
    return a.reshape(-1, *shape)


def _step(
    ex: Executor, g: Graph, x: np.ndarray, states: list[np.ndarray]
) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    with np.errstate(all="ignore"):  # NaN/Inf in both runs alike is compared, not raised
        out = ex.run({g.inputs[0].name: x, **dict(zip(g.state_inputs, states))})
    return out, [out[s.output] for s in g.states]
