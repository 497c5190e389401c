"""`rnnedge check`: every backend x every precision of a bundle against the float reference.

    report = run_check(read_bundle("kws.rnnedge"), CheckConfig(steps=10_000))
    report.passed  # every checked output within its precision's budget

The reference is, in order of preference: PyTorch recomputed from the user's model (a
`reference` step function, built by export/check_reference.py: the only path needing torch), the
golden outputs PyTorch recorded at export (golden.npz, when the golden inputs are checked as
they are), or the numpy float executor (the executable spec) when the inputs are the user's
or looped to --steps, for which no recorded outputs exist. Each stream starts at the
manifest's initial state and carries its state from step to step, as in deployment.
Needs numpy only; see docs/check.md for the metrics and the JSON schema.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from rnnedge.errors import BackendError, InputError
from rnnedge.progress import Progress
from rnnedge.runtime.backends import (
    BACKENDS,
    MODEL_FILE_KIND,
    Runner,
    available_backends,
    offers,
    open_backend,
)
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.data import Sequences, golden_sequences, loop
from rnnedge.runtime.check.metrics import OutputMetrics, judge, output_metrics, task_metrics
from rnnedge.runtime.check.spec_drift import spec_drift
from rnnedge.runtime.manifest import PRECISIONS, Task

# (x, states) -> (data outputs, next states): one step of a backend or of the reference
StepFn = Callable[[np.ndarray, list[np.ndarray]], tuple[list[np.ndarray], list[np.ndarray]]]
STATUSES = ("pass", "fail", "error", "skipped")


@dataclass(frozen=True, kw_only=True)
class CheckConfig:
    backends: tuple[str, ...] = ()  # empty: every installed backend
    precisions: tuple[str, ...] = ()  # empty: every precision the bundle holds
    steps: int | None = None  # drive one stream of this many steps (inputs looped)
    # precision or "*" -> a scaled_abs_err limit replacing that precision's budget
    budgets: Mapping[str, float] = field(default_factory=dict)
    windows: int = 20  # the drift curve is summarised in this many windows

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise InputError(f"unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"steps must be at least 1, got {self.steps}")
        if self.windows < 1:
            raise InputError(f"windows must be at least 1, got {self.windows}")
        for p, v in self.budgets.items():
            if (p != "*" and p not in PRECISIONS) or not v > 0:
                raise InputError(
                    f"budget {p}={v}: needs a precision of {PRECISIONS} and a limit > 0"
                )


@dataclass(frozen=True, kw_only=True)
class PairResult:
    """One backend x precision: its status and the metrics of every output and state."""

    backend: str
    precision: str
    status: str  # one of STATUSES
    reason: str = ""  # why it was skipped or errored, or which outputs failed
    budget: dict[str, float] = field(default_factory=dict)
    outputs: tuple[OutputMetrics, ...] = ()
    seconds: float | None = None  # wall time of its streams (noisy; for orientation only)


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    bundle: Bundle
    reference: str  # "golden" | "numpy" | "torch"
    source: str  # "golden" | "data": where the inputs came from
    data_path: str | None
    sequences: int
    steps: int  # steps driven per backend, over all sequences
    looped: bool
    task: Task | None
    results: tuple[PairResult, ...]

    @property
    def passed(self) -> bool:
        ran = [r for r in self.results if r.status != "skipped"]
        return bool(ran) and all(r.status == "pass" for r in ran)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def run_check(
    bundle: Bundle,
    config: CheckConfig | None = None,
    *,
    data: Sequences | None = None,
    reference: StepFn | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    """Runs every selected backend x precision over the golden sequences (or `data`), each
    against the reference, and judges every output and state by its precision's budget."""
    config = config or CheckConfig()
    say = progress or (lambda _m: None)
    task = _task(bundle)
    pairs = _pairs(bundle, config)  # before the reference: a bad --precision fails at once
    seqs, golden_refs = (data, None) if data is not None else golden_sequences(bundle)
    looped = config.steps is not None
    if looped:
        seqs, golden_refs = loop(seqs, config.steps), None
    kind = "torch" if reference else "golden" if golden_refs is not None else "numpy"
    if kind == "torch" or kind == "numpy":
        say(f"computing the {kind} reference over {seqs.steps} steps")
        ref_step = reference or backend_step(open_backend(bundle, "numpy", "float"), bundle)
        golden_refs = run_streams(bundle, ref_step, seqs)
    results = []
    for backend, precision in pairs:
        say(f"checking {backend}/{precision}")
        skip = _why_skip(bundle, config, backend, precision, kind)
        if skip:
            results.append(
                PairResult(backend=backend, precision=precision, status="skipped", reason=skip)
            )
            continue
        results.append(_check_pair(bundle, config, backend, precision, seqs, golden_refs, task))
    return make_report(bundle, kind, data, seqs, looped, task, results)


def make_report(
    bundle: Bundle,
    reference: str,
    data: Sequences | None,
    seqs: Sequences,
    looped: bool,
    task: Task | None,
    results: list[PairResult],
) -> CheckReport:
    """The report of `results`, run over `seqs` (the user's `data`, or golden when None)."""
    return CheckReport(
        bundle=bundle,
        reference=reference,
        source="golden" if data is None else "data",
        data_path=data.path if data is not None else None,
        sequences=len(seqs.inputs),
        steps=seqs.steps,
        looped=looped,
        task=task,
        results=tuple(results),
    )


def _task(bundle: Bundle) -> Task | None:
    task = bundle.manifest.task
    names = [t.name for t in bundle.graph.data_outputs]
    if task is None:
        return None
    if task.output is None:
        return replace(task, output=names[0])
    if task.output not in names:
        raise InputError(f"{bundle.path}: manifest task output {task.output!r} not in {names}")
    return task


def budgets(bundle: Bundle, overrides: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The manifest's budgets, with --budget overrides: "*" or a precision -> a scaled_abs_err
    limit, replacing that precision's whole budget."""
    out = {p: dict(b) for p, b in bundle.manifest.budgets.items()}
    for p in PRECISIONS:
        if p in overrides or "*" in overrides:
            out[p] = {"scaled_abs_err": float(overrides.get(p, overrides.get("*", 0.0)))}
    return out


def _pairs(bundle: Bundle, config: CheckConfig) -> list[tuple[str, str]]:
    held = {m.precision for m in bundle.manifest.models} | {"float"}
    precisions = [p for p in PRECISIONS if p in held]
    if config.precisions:
        missing = [p for p in config.precisions if p not in held]
        if missing:
            raise InputError(f"{bundle.path}: has no {missing[0]} models (has {precisions})")
        precisions = [p for p in precisions if p in config.precisions]
    backends = list(config.backends) or list(BACKENDS)
    return [(b, p) for b in backends for p in precisions]


def _why_skip(bundle: Bundle, config: CheckConfig, backend: str, precision: str, ref: str) -> str:
    if backend == "numpy" and precision == "float" and ref == "numpy":
        return "is the reference"
    if backend in MODEL_FILE_KIND:
        held = {(m.backend, m.precision) for m in bundle.manifest.models}
        if (MODEL_FILE_KIND[backend], precision) not in held:
            return f"the bundle has no {MODEL_FILE_KIND[backend]} {precision} model"
    if not offers(bundle, backend, precision):
        return f"the bundle has no {precision} C (an op without a C kernel, see export)"
    if backend not in available_backends() and backend not in config.backends:
        return "not installed"
    return ""


def _check_pair(
    bundle: Bundle,
    config: CheckConfig,
    backend: str,
    precision: str,
    seqs: Sequences,
    refs: dict[str, list[np.ndarray]],
    task: Task | None,
) -> PairResult:
    budget = budgets(bundle, config.budgets).get(precision)
    base = PairResult(backend=backend, precision=precision, status="error", budget=budget or {})
    try:
        # the runner a Stream deploys with (own interpreter, IO bindings, state kept inside),
        # so check exercises the hot path itself, not only the backend's plain run()
        step = open_backend(bundle, backend, precision).runner()
    except BackendError as e:
        if backend == "numpy":  # the executor does not (yet) run this precision: nothing to do
            return replace(base, status="skipped", reason=str(e))
        return replace(base, reason=str(e))
    start = time.perf_counter()
    try:
        got = run_streams(bundle, step, seqs)
    except Exception as e:  # an interpreter that crashes mid-stream is a failed check
        return replace(base, reason=f"{type(e).__name__} while running: {e}")
    seconds = time.perf_counter() - start
    n_data = len(bundle.graph.data_outputs)
    outputs = []
    for i, spec in enumerate(bundle.graph.outputs):
        m = output_metrics(
            spec.name,
            "output" if i < n_data else "state",
            got[spec.name],
            refs[spec.name],
            config.windows,
        )
        is_task = task is not None and spec.name == task.output
        if is_task:
            m = replace(m, task=task_metrics(task, got[spec.name], refs[spec.name], seqs.labels))
        outputs.append(replace(m, violations=judge(m, budget or {}, is_task)))
    if budget is None:
        reason = f"no budget for {precision} (set one with --budget {precision}=LIMIT)"
        return replace(base, outputs=tuple(outputs), seconds=seconds, reason=reason)
    drift = spec_drift(bundle, backend, seqs.inputs) if precision == "int8" else ""
    return judged(base, outputs, seconds, drift)


def judged(
    base: PairResult, outputs: list[OutputMetrics], seconds: float, drift: str = ""
) -> PairResult:
    """`base` with its outputs' verdict: "fail" naming each output out of budget (and the
    int8 spec `drift`, if any), else "pass"."""
    bad = [m for m in outputs if not m.passed]
    reason = "; ".join(f"{m.name}: {', '.join(m.violations)}" for m in bad)
    reason = "; ".join(r for r in (drift, reason) if r)
    status = "fail" if bad or drift else "pass"
    return replace(base, status=status, reason=reason, outputs=tuple(outputs), seconds=seconds)


def backend_step(backend, bundle: Bundle) -> StepFn:
    """A backend's run() as a StepFn."""
    n_data = len(bundle.graph.data_outputs)

    def step(x: np.ndarray, states: list[np.ndarray]) -> tuple[list, list]:
        outs = backend.run([x, *states])
        return outs[:n_data], outs[n_data:]

    return step


def run_streams(
    bundle: Bundle, step: StepFn | Runner, seqs: Sequences
) -> dict[str, list[np.ndarray]]:
    """Every graph output (states included) at every step: name -> per sequence (T, *shape),
    each sequence one stream from the initial state, the state carried (inside the runner
    when `step` is one)."""
    g = bundle.graph
    out: dict[str, list[np.ndarray]] = {t.name: [] for t in g.outputs}
    runner = step if hasattr(step, "get_state") else None
    for xs in seqs.inputs:
        states = [g.constants[s.init].copy() for s in g.states]
        if runner is not None:
            runner.set_state(states)
        rows: list[list[np.ndarray]] = [[] for _ in g.outputs]
        for x in xs:
            if runner is not None:
                # float32, or the manifest's int32/int64 for token ids
                x = np.ascontiguousarray(x, g.inputs[0].dtype)
                ys, states = runner.step(x), runner.get_state()
            else:
                ys, states = step(x, states)
            states = [np.asarray(s, np.float32) for s in states]
            for row, v in zip(rows, [*ys, *states]):
                row.append(np.array(v, np.float32))  # a copy: interpreters may reuse buffers
        for t, row in zip(g.outputs, rows):
            out[t.name].append(np.stack(row) if row else np.zeros((0, *t.shape), np.float32))
    return out
