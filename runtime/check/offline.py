"""`rnnedge check` (and export's gate) for an offline bundle (runtime/stages.py): the whole
program on each backend x precision over whole golden sequences (or --data), against
PyTorch's outputs recorded at export (or the numpy float program for --data). Only the data
outputs are compared: an offline program's states are internal to its stages."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from rnnedge.errors import BackendError, InputError
from rnnedge.progress import Progress
from rnnedge.runtime.backends import BACKENDS, available_backends
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.data import Sequences
from rnnedge.runtime.check.metrics import judge, output_metrics, task_metrics
from rnnedge.runtime.check.run import (
    CheckConfig,
    CheckReport,
    PairResult,
    StepFn,
    budgets,
    judged,
    make_report,
    run_check,
)
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import PRECISIONS
from rnnedge.runtime.offline import OfflineBackend

Outputs = dict[str, list[np.ndarray]]  # output name -> per sequence (T, *shape)


def golden_arrays(
    x_name: str, inputs: list[np.ndarray], graph: Graph, outputs: list[list[np.ndarray]]
) -> dict[str, np.ndarray]:
    """golden.npz of an offline bundle: seq{i}.{input} and seq{i}.{each data output}."""
    arrays: dict[str, np.ndarray] = {}
    for i, (xs, ys) in enumerate(zip(inputs, outputs)):
        arrays[f"seq{i}.{x_name}"] = xs
        for spec, y in zip(graph.data_outputs, ys):
            if y.shape != (len(xs), *spec.shape):
                raise InputError(f"golden {spec.name!r}: shape {list(y.shape)} is not (T, ...)")
            arrays[f"seq{i}.{spec.name}"] = np.asarray(y, np.float32)
    return arrays


def offline_golden(bundle: Bundle) -> tuple[Sequences, Outputs]:
    gold, x_name = bundle.golden(), bundle.graph.inputs[0].name
    inputs, refs = [], {t.name: [] for t in bundle.graph.data_outputs}
    while f"seq{len(inputs)}.{x_name}" in gold:
        i = len(inputs)
        inputs.append(gold[f"seq{i}.{x_name}"])
        for name, runs in refs.items():
            runs.append(gold[f"seq{i}.{name}"])
    if not inputs:
        raise InputError(f"{bundle.path}/golden.npz: holds no sequences")
    return Sequences(tuple(inputs), (None,) * len(inputs)), refs


def program_outputs(backend: OfflineBackend, seqs: Sequences) -> Outputs:
    """Each data output of every sequence, each run from the initial state."""
    names = [t.name for t in backend.data_outputs]
    out: Outputs = {n: [] for n in names}
    for xs in seqs.inputs:
        ys = backend.run_sequence(xs)
        for n, y in zip(names, ys if isinstance(ys, tuple) else (ys,)):
            out[n].append(y)
    return out


def precisions_held(bundle: Bundle) -> list[str]:
    held = {"float"}
    for spec in bundle.manifest.stages:
        doc = bundle.files.get(spec.file("manifest.json"), b"")
        held |= {p for p in PRECISIONS if f'"precision": "{p}"'.encode() in doc}
    return [p for p in PRECISIONS if p in held]


def check_bundle(
    bundle: Bundle,
    config: CheckConfig | None = None,
    *,
    data: Sequences | None = None,
    reference: StepFn | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    """run_check for a streaming bundle, run_offline_check for an offline one."""
    if not bundle.manifest.stages:
        return run_check(bundle, config, data=data, reference=reference, progress=progress)
    if reference is not None:
        raise InputError(
            f"{bundle.path}: an offline bundle is checked against its golden vectors (or the "
            "numpy program with --data), not a --model step reference"
        )
    return run_offline_check(bundle, config or CheckConfig(), data=data, progress=progress)


def run_offline_check(
    bundle: Bundle,
    config: CheckConfig,
    *,
    data: Sequences | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    say = progress or (lambda _m: None)
    if config.steps is not None:
        raise InputError(
            f"{bundle.path}: an offline bundle runs whole sequences; --steps does not apply"
        )
    held = precisions_held(bundle)
    missing = [p for p in config.precisions if p not in held]
    if missing:
        raise InputError(f"{bundle.path}: has no {missing[0]} models (has {held})")
    if data is None:
        seqs, refs, kind = *offline_golden(bundle), "golden"
    else:
        say("computing the numpy float reference")
        seqs, kind = data, "numpy"
        refs = program_outputs(OfflineBackend(bundle, "numpy", "float"), data)
    results = []
    for backend in config.backends or BACKENDS:
        for precision in [p for p in held if not config.precisions or p in config.precisions]:
            say(f"checking {backend}/{precision}")
            results.append(_pair(bundle, config, backend, precision, seqs, refs, kind))
    return make_report(bundle, kind, data, seqs, False, bundle.manifest.task, results)


def _pair(bundle, config, backend, precision, seqs, refs, kind) -> PairResult:
    budget = budgets(bundle, config.budgets).get(precision) or {}
    base = PairResult(backend=backend, precision=precision, status="error", budget=budget)
    if backend == "numpy" and precision == "float" and kind == "numpy":
        return replace(base, status="skipped", reason="is the reference")
    if backend not in available_backends() and backend not in config.backends:
        return replace(base, status="skipped", reason="not installed")
    try:
        program = OfflineBackend(bundle, backend, precision)
        start = time.perf_counter()
        got = program_outputs(program, seqs)
    except BackendError as e:
        return replace(base, reason=str(e))
    seconds = time.perf_counter() - start
    task = bundle.manifest.task
    task_out = (task.output or next(iter(refs))) if task else None
    outputs = []
    for name, runs in got.items():
        m = output_metrics(name, "output", runs, refs[name], config.windows)
        if name == task_out:
            m = replace(m, task=task_metrics(task, runs, refs[name], seqs.labels))
        outputs.append(replace(m, violations=judge(m, budget, name == task_out)))
    return judged(base, outputs, seconds)
