"""How close int8 is to float: the numpy integer spec against the float Graph, stream by
stream, the state carried in each (each from the graph's initial state, as deployed).

Per data output: the max error as % of the float output's range, the mean error, the
agreement of decisions (argmax over the last axis when it has several entries; the 0.5
threshold for an output in [0, 1]), and drift: the mean error over the last quarter of
each sequence against the first quarter. A recurrence whose int8 rounding accumulates
(an integrating state on one coarse scale) shows as a late error well above the early one.

`measure` runs the real integer kernels (runtime/quant/int8.py); `fake_quant_error` runs the
float graph with only some tensors rounded to their int8 grid, to rank tensors by how much
int8 costs at each alone (quantize/mixed.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from rnnedge.runtime.executor import Executor, Step, compile_steps, run_steps
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.quant.int8 import Int8Executor, dequantize, quantize
from rnnedge.runtime.quant.plan import QParams, QuantPlan

# drift: the late quarter's mean error above DRIFT_RATIO x the early quarter's, and by more
# than DRIFT_FLOOR of the output range (a few-step transient from the zero state is no drift)
DRIFT_RATIO = 1.5
DRIFT_FLOOR = 0.0025
THRESHOLD = 0.5


@dataclass(frozen=True, kw_only=True)
class OutputFidelity:
    name: str
    max_err_pct: float  # max |int8 - float| / (float max - float min), in %
    mean_err: float  # mean |int8 - float|, in the output's units
    agreement: float | None  # fraction of steps whose decision agrees, or None
    decision: str  # "argmax" | "threshold 0.5" | "" (no decision read off this output)
    drift: float  # late-quarter mean error / early-quarter mean error
    drifting: bool
    # % of the float output's values beyond what its int8 grid holds (clipped in int8), or
    # None when the output is not int8 (an LM head's int8 logits: quantize/islands.py)
    clipped_pct: float | None = None

    def to_json(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, kw_only=True)
class Fidelity:
    split: str  # "calibration" | "held-out"
    sequences: int
    steps: int
    outputs: tuple[OutputFidelity, ...]

    @property
    def worst_pct(self) -> float:
        return max((o.max_err_pct for o in self.outputs), default=0.0)

    @property
    def drifting(self) -> bool:
        return any(o.drifting for o in self.outputs)

    def to_json(self) -> dict:
        return {
            "sequences": self.sequences,
            "steps": self.steps,
            "outputs": [o.to_json() for o in self.outputs],
        }


Streams = dict[str, list[np.ndarray]]  # output name -> per sequence (T, *shape)
# the graph outputs a fidelity judges (None: the data outputs); an offline stage's state
# outputs are data to the stages after it (export/offline/program.py)
Judged = tuple[str, ...] | None


def float_outputs(graph: Graph, sequences: list[np.ndarray], judged: Judged = None) -> Streams:
    ex = Executor(graph)
    step = lambda feeds: ex.run(feeds)  # noqa: E731
    return _streams(graph, sequences, step, judged)


def int8_outputs(
    graph: Graph, plan: QuantPlan, sequences: list[np.ndarray], judged: Judged = None
) -> Streams:
    """The numpy integer spec's data outputs, its integer state carried as deployed.
    `judged`: the outputs to return, state outputs included (default: the data outputs); a
    state then goes round as float, exact since its input and output share one grid."""
    spec = Int8Executor(graph, plan)
    if judged is not None:
        return _streams(graph, sequences, spec.run, judged)
    x = graph.inputs[0].name
    out: Streams = {t.name: [] for t in graph.data_outputs}
    for seq in sequences:
        q = spec.initial_qstate()
        rows: dict[str, list[np.ndarray]] = {k: [] for k in out}
        for xt in seq:
            ys, q = spec.step({x: xt}, q)
            for k in rows:
                rows[k].append(ys[k])
        for k in out:
            out[k].append(np.stack(rows[k]))
    return out


def fake_quant_outputs(
    graph: Graph,
    params: Mapping[str, QParams],
    sequences: list[np.ndarray],
    judged: Judged = None,
) -> Streams:
    """The float graph with each tensor of `params` rounded to its int8 grid (quantized and
    dequantized as the spec does) wherever it is made or fed, everything else float."""
    steps = compile_steps(graph)
    steps = [
        Step(_rounded(s.fn, params[s.output]), s.inputs, s.output, s.attrs, s.op)
        if s.output in params
        else s
        for s in steps
    ]
    names = [t.name for t in graph.outputs]

    def step(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = dict(graph.constants)
        values.update({k: _round(v, params[k]) if k in params else v for k, v in feeds.items()})
        run_steps(steps, values)
        return {k: values[k] for k in names}

    return _streams(graph, sequences, step, judged)


def _round(v: np.ndarray, p: QParams) -> np.ndarray:
    return dequantize(quantize(v, p), p)


def _rounded(fn, p: QParams):
    return lambda *a, **k: _round(fn(*a, **k), p)


def _streams(graph: Graph, sequences: list[np.ndarray], step, judged: Judged) -> Streams:
    x = graph.inputs[0].name
    names = judged if judged is not None else [t.name for t in graph.data_outputs]
    out: Streams = {name: [] for name in names}
    for seq in sequences:
        state = graph.initial_state()
        rows: dict[str, list[np.ndarray]] = {k: [] for k in out}
        for xt in seq:
            vals = step({x: xt, **state})
            state = {s.input: vals[s.output] for s in graph.states}
            for k in rows:
                rows[k].append(vals[k])
        for k in out:
            out[k].append(np.stack(rows[k]))
    return out


Held = Mapping[str, tuple[float, float]]  # int8 output -> the float range its grid holds


def compare(split: str, got: Streams, ref: Streams, held: Held | None = None) -> Fidelity:
    """The fidelity of `got` (int8) against `ref` (float), output by output; `held`: the
    range each int8 output's grid holds (representable), to count the float values clipped."""
    held = held or {}
    outputs = tuple(_output(name, got[name], ref[name], held.get(name)) for name in ref)
    seqs = next(iter(ref.values()), [])
    return Fidelity(
        split=split,
        sequences=len(seqs),
        steps=sum(len(s) for s in seqs),
        outputs=outputs,
    )


def representable(plan: QuantPlan, names: Iterable[str]) -> dict[str, tuple[float, float]]:
    """name -> the float range the int8 grid of each of `names` holds (only int8 ones)."""
    out = {}
    for name in names:
        p = plan.activation(name)
        if p is not None and p.dtype == "int8":
            s, zp = p.scale[0], p.zero_point[0]
            out[name] = (s * (-128 - zp), s * (127 - zp))
    return out


def _output(
    name: str, got: list[np.ndarray], ref: list[np.ndarray], held: tuple[float, float] | None
) -> OutputFidelity:
    flat_ref = np.concatenate([r.reshape(len(r), -1) for r in ref])
    flat_got = np.concatenate([g.reshape(len(g), -1) for g in got])
    span = max(float(flat_ref.max() - flat_ref.min()), 1e-12)
    err = np.abs(flat_got.astype(np.float64) - flat_ref)
    err[~np.isfinite(err)] = np.inf  # a NaN would compare below any budget and pass
    early, late = _quarters(got, ref)
    drift = late / max(early, 1e-12 * span)
    decision, agree = _agreement(flat_got, flat_ref, ref[0].shape[-1] if ref[0].ndim else 1)
    return OutputFidelity(
        name=name,
        max_err_pct=100 * float(err.max(initial=0.0)) / span,
        mean_err=float(err.mean()) if err.size else 0.0,
        agreement=agree,
        decision=decision,
        drift=float(min(drift, 1e6)),
        drifting=bool(late > DRIFT_RATIO * early and late - early > DRIFT_FLOOR * span),
        clipped_pct=None
        if held is None
        else 100 * float(((flat_ref < held[0]) | (flat_ref > held[1])).mean()),
    )


def _quarters(got: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, float]:
    """Mean error over the first and the last quarter of every sequence (of 4+ steps)."""
    early, late = [], []
    for g, r in zip(got, ref):
        q = len(r) // 4
        if q == 0:
            continue
        e = np.abs(g.reshape(len(g), -1).astype(np.float64) - r.reshape(len(r), -1))
        early.append(e[:q])
        late.append(e[-q:])
    if not early:
        return 0.0, 0.0
    return float(np.concatenate(early).mean()), float(np.concatenate(late).mean())


def _agreement(got: np.ndarray, ref: np.ndarray, last: int) -> tuple[str, float | None]:
    if last > 1:
        g = got.reshape(-1, last).argmax(axis=1)
        r = ref.reshape(-1, last).argmax(axis=1)
        return "argmax", float((g == r).mean())
    if ref.min() >= 0 and ref.max() <= 1:
        return f"threshold {THRESHOLD:g}", float(((got > THRESHOLD) == (ref > THRESHOLD)).mean())
    return "", None


def split_held_out(sequences: Iterable[np.ndarray]) -> tuple[list, list]:
    """(calibration, held out): every fifth sequence held out when there are 5 or more, so
    calibration keeps at least 4 (ExportConfig's minimum) and int8 is judged on unseen data."""
    seqs = list(sequences)
    if len(seqs) < 5:
        return seqs, []
    held = seqs[4::5]
    return [s for i, s in enumerate(seqs) if i % 5 != 4], held
