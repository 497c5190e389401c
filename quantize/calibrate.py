"""calibrate(graph, sequences) -> Ranges: the range of every tensor over real sequences.

The float Graph runs over each sequence with the state carried from step to step, starting
from the graph's initial state, exactly as a deployed stream runs, so state tensors see the
values they see in deployment (a per-step calibration from zero state would not). Minmax by
default; `percentile=p` records the [100 - p, p] percentiles instead (clips rare outliers).
Values of magnitude >= SENTINEL are stand-ins for infinity, not data (RWKV's running max
starts at -1e30 so that exp(max - q) is 0): they never enter a range, or one value would set
a scale of 1e28 and every real value would round to 0 (quantize/int8.py keeps a state that
starts there float).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rnnedge.errors import InputError
from rnnedge.progress import Progress
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import INDEX_DTYPES, Graph
from rnnedge.runtime.inputs import check_ids, id_limit
from rnnedge.runtime.quant.plan import Ranges

SENTINEL = 1e30


def calibrate(
    graph: Graph,
    sequences: Iterable[np.ndarray],
    *,
    percentile: float | None = None,
    progress: Progress | None = None,
) -> Ranges:
    if percentile is not None and not 50 < percentile <= 100:
        raise InputError(f"calibration percentile {percentile!r} must be in (50, 100]")
    say = progress or (lambda _m: None)
    executor = Executor(graph)  # refuses a graph that cannot run before any data is read
    seqs = check_sequences(graph, sequences)
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    samples: dict[str, list[np.ndarray]] = {}
    steps = 0
    for i, seq in enumerate(seqs):
        state = graph.initial_state()
        for x in seq:
            values = executor.tensors({graph.inputs[0].name: x, **state})
            state = {s.input: values[s.output] for s in graph.states}
            for name, v in values.items():
                if name in graph.constants or v.dtype.kind != "f":  # token ids have no range
                    continue
                v = _data_values(v)
                if percentile is None:
                    lo[name] = min(lo.get(name, np.inf), float(v.min(initial=np.inf)))
                    hi[name] = max(hi.get(name, -np.inf), float(v.max(initial=-np.inf)))
                else:
                    samples.setdefault(name, []).append(v.ravel())
            steps += 1
        say(f"calibration: sequence {i + 1}/{len(seqs)} ({steps} steps)")
    if percentile is not None:
        for name, parts in samples.items():
            flat = np.concatenate(parts)
            lo[name] = float(np.percentile(flat, 100 - percentile))
            hi[name] = float(np.percentile(flat, percentile))
    method = "minmax" if percentile is None else f"percentile {percentile:g}"
    ranges = {k: (lo[k], hi[k]) for k in lo}
    return Ranges(ranges=ranges, sequences=len(seqs), steps=steps, method=method)


def _data_values(v: np.ndarray) -> np.ndarray:
    """v without its infinity stand-ins (|v| >= SENTINEL); the check is cheap, the copy rare."""
    if v.size and (v.min() <= -SENTINEL or v.max() >= SENTINEL):
        return v[np.abs(v) < SENTINEL]
    return v


@dataclass(frozen=True)
class Overrun:
    """A tensor that other data drives beyond its calibrated range."""

    tensor: str
    seen: tuple[float, float]
    calibrated: tuple[float, float]

    @property
    def fraction(self) -> float:
        """How far beyond, as a fraction of the calibrated range's width."""
        (lo, hi), (clo, chi) = self.seen, self.calibrated
        return max(clo - lo, hi - chi, 0.0) / max(chi - clo, 1e-12)

    def describe(self) -> str:
        (lo, hi), (clo, chi) = self.seen, self.calibrated
        return (
            f"tensor {self.tensor!r} reaches [{lo:.4g}, {hi:.4g}], beyond its calibrated range "
            f"[{clo:.4g}, {chi:.4g}] by {100 * self.fraction:.0f}% of its width; int8 clips "
            "it there (calibrate on data more like this)"
        )


def range_overruns(calibrated: Ranges, seen: Ranges, tensors: Iterable[str]) -> list[Overrun]:
    """The `tensors` whose range in `seen` leaves their range in `calibrated`, worst first."""
    out = [
        Overrun(name, seen.ranges[name], calibrated.ranges[name])
        for name in tensors
        if name in seen.ranges and name in calibrated.ranges
    ]
    return sorted((o for o in out if o.fraction > 0), key=lambda o: -o.fraction)


def check_sequences(
    graph: Graph, sequences: Iterable[np.ndarray], what: str = "calibration"
) -> list[np.ndarray]:
    """The sequences as float32 (T, *step shape) arrays (ids of the input's integer dtype for
    an embedding's input); a clear error for anything else.
    `what` names them in errors ("calibration", "golden")."""
    if sequences is None:
        raise InputError(f"{what}: no sequences given")
    x = graph.inputs[0]
    shape, limit = x.shape, id_limit(graph, x.name)
    size = int(np.prod(shape))
    out = []
    for i, seq in enumerate(sequences):
        arr = np.asarray(seq)
        if arr.dtype.kind not in "fiu":
            raise InputError(f"{what} sequence {i}: dtype {arr.dtype} is not numeric")
        if arr.ndim < 1 or len(arr) == 0 or arr[0].size != size:
            raise InputError(
                f"{what} sequence {i}: shape {list(arr.shape)} is not (T, {list(shape)}) "
                f"with T >= 1"
            )
        if x.dtype in INDEX_DTYPES:  # token ids: integers that index the embedding table
            reshaped = arr.reshape(len(arr), *shape)
            out.append(check_ids(reshaped, reshaped.shape, f"{what} sequence {i}", x.dtype, limit))
            continue
        arr = arr.astype(np.float32).reshape(len(arr), *shape)
        if not np.isfinite(arr).all():
            raise InputError(f"{what} sequence {i}: holds NaN or Inf")
        out.append(arr)
    if not out:
        raise InputError(f"{what}: no sequences given (need at least one)")
    return out
