"""export_bundle: capture -> emit ONNX and TFLite -> golden vectors -> parity -> bundle."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnedge import __version__
from rnnedge.errors import ExportError, RnnedgeError
from rnnedge.export.capture.program import Captured, capture
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.runtime.backends import BACKENDS, available_backends
from rnnedge.runtime.bundle import Bundle, write_bundle
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import DEFAULT_BUDGETS, Manifest, ModelFile, StateSpec, Task
from rnnedge.runtime.npzio import write_npz

GOLDEN_SEQUENCES = 3
GOLDEN_STEPS = 64
# Export refuses to write a bundle whose backend disagrees with PyTorch by more than this
# (relative to max(1, |reference|)): such a bundle would be a silent wrong answer. The tests
# hold every backend to 1e-5; this gate catches gross emitter bugs on the user's own model.
EXPORT_PARITY_GATE = 1e-4
QUANTIZE = ("none", "int8-dynamic", "int8")

Progress = Callable[[str], None]


def export_bundle(
    model: torch.nn.Module,
    example: Any,
    out: str | os.PathLike,
    *,
    quantize: str = "none",
    calibration: Iterable[np.ndarray] | None = None,
    percentile: float | None = None,
    golden: Iterable[np.ndarray] | None = None,
    task: Task | dict | None = None,
    progress: Progress | None = None,
) -> Path:
    """Exports `model` at one step to the bundle directory `out` and returns its path.
    golden: input sequences (T, *step shape) for golden.npz; seeded random inputs if None.
    quantize: "none", "int8-dynamic" (int8 weights) or "int8" (full integer; needs
    `calibration`: input sequences (T, *step shape) run with the state carried to fix every
    activation's range, minmax or, with `percentile`, the [100 - p, p] percentiles).
    task: what the output means, for `rnnedge check`'s task metric, e.g.
    {"kind": "classification"} or {"kind": "regression", "output": "y"} (see docs/check.md)."""
    if quantize not in QUANTIZE:
        raise ExportError(f"quantize={quantize!r}: choose one of {', '.join(QUANTIZE)}")
    say = progress or (lambda _msg: None)
    say("capturing one step with torch.export")
    cap = capture(model, example)
    states = ", ".join(cap.graph.state_inputs) or "none"
    say(f"captured {len(cap.graph.nodes)} ops, states: {states}")
    files = {
        "graph.json": (json.dumps(cap.graph.to_json(), indent=1) + "\n").encode(),
        "weights.npz": write_npz(cap.graph.constants),
    }
    say("emitting ONNX and TFLite")
    files["model.onnx"] = emit_onnx(cap.graph)
    files["model.tflite"] = emit_tflite(cap.graph)
    calib = None
    if calibration is not None:  # checked (shape, NaN/Inf, empty) before anything else runs
        from rnnedge.quantize.calibrate import check_sequences

        calib = check_sequences(cap.graph, calibration)
    say("recording golden vectors with PyTorch")
    sequences = _golden_inputs(cap.graph, golden if golden is not None else _first(calib))
    files["golden.npz"] = write_npz(golden_vectors(cap, sequences))
    manifest = _manifest(cap.graph, files={}, task=_task(task, cap.graph))
    manifest = dataclasses.replace(manifest, unbatched_why=cap.unbatched_why)
    if quantize != "none":
        from rnnedge.export.quantized import add_int8

        manifest, files = add_int8(
            quantize, cap.graph, calib, sequences, manifest, files, say, percentile=percentile
        )
    if cap.unbatched_why:
        say(f"streams(n) unavailable (single streams work): {cap.unbatched_why}")
    say("checking every backend against PyTorch")
    bundle = Bundle(Path(out), manifest, cap.graph, files)
    results, _ = parity(bundle, "float", EXPORT_PARITY_GATE, say)
    manifest = dataclasses.replace(manifest, parity={**manifest.parity, **results})
    if quantize != "none":
        from rnnedge.export.quantized import int8_parity

        bundle = Bundle(Path(out), manifest, cap.graph, files)
        manifest = int8_parity(bundle, manifest, quantize, say)
    path = write_bundle(out, manifest, files)
    say(f"wrote {path}")
    return path


def _task(task: Task | dict | None, graph: Graph) -> Task | None:
    if task is None or isinstance(task, Task):
        t = task
    elif isinstance(task, dict):
        try:
            t = Task(**task)
        except TypeError as e:  # an unknown key
            raise ExportError(f"task {task!r}: {e}") from e
    else:
        raise ExportError(f"task must be a dict like {{'kind': 'classification'}}, got {task!r}")
    names = [o.name for o in graph.data_outputs]
    if t is not None and t.output is not None and t.output not in names:
        raise ExportError(f"task output {t.output!r} is not a model output (outputs: {names})")
    return t


def _manifest(graph: Graph, files: dict[str, str], task: Task | None = None) -> Manifest:
    states = tuple(
        StateSpec(
            input=s.input,
            output=s.output,
            shape=graph.spec(s.input).shape,
            init=s.init,
            init_is_zero=not np.any(graph.constants[s.init]),
        )
        for s in graph.states
    )
    return Manifest(
        producer=f"rnnedge {__version__}",
        inputs=graph.inputs,
        outputs=graph.outputs,
        states=states,
        models=(
            ModelFile(path="model.onnx", backend="onnx", precision="float"),
            ModelFile(path="model.tflite", backend="tflite", precision="float"),
        ),
        files=files,
        parity={},
        # float: 1e-5 abs, relative where |ref| > 1 (int8 adds its own measured budget)
        budgets={p: dict(b) for p, b in DEFAULT_BUDGETS.items()},
        task=task,
    )


def _first(calib: list[np.ndarray] | None) -> list[np.ndarray] | None:
    return None if calib is None else calib[:GOLDEN_SEQUENCES]


def _golden_inputs(graph: Graph, golden: Iterable[np.ndarray] | None) -> list[np.ndarray]:
    shape = graph.inputs[0].shape
    if golden is None:
        rng = np.random.default_rng(0)  # fixed seed: the same model gives the same bundle
        return [
            rng.standard_normal((GOLDEN_STEPS, *shape)).astype(np.float32)
            for _ in range(GOLDEN_SEQUENCES)
        ]
    from rnnedge.quantize.calibrate import check_sequences

    return check_sequences(graph, golden, "golden")


def golden_vectors(cap: Captured, sequences: list[np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch's outputs and states at every step of each sequence, from the initial state."""
    g = cap.graph
    arrays: dict[str, np.ndarray] = {}
    for i, seq in enumerate(sequences):
        states = [g.constants[s.init] for s in g.states]
        rows: dict[str, list[np.ndarray]] = {t.name: [] for t in g.outputs}
        for x in seq:
            outs, states = cap.torch_step([x], states)
            for t, v in zip(g.outputs, [*outs, *states]):
                rows[t.name].append(v)
        arrays[f"seq{i}.{g.inputs[0].name}"] = seq
        arrays.update({f"seq{i}.{k}": np.stack(v).astype(np.float32) for k, v in rows.items()})
    return arrays


def run_golden(bundle: Bundle, backend_name: str, precision: str = "float") -> dict[str, float]:
    """Max error of one backend against golden.npz per output (states included), relative to
    max(1, |reference|) at each step, run through the runner a Stream deploys with (its own
    interpreter or IO bindings), the state carried inside it as in deployment."""
    from rnnedge.runtime.backends import open_backend
    from rnnedge.runtime.check.data import golden_sequences
    from rnnedge.runtime.check.run import run_streams

    runner = open_backend(bundle, backend_name, precision).runner()
    seqs, refs = golden_sequences(bundle)
    got = run_streams(bundle, runner, seqs)
    worst = {}
    for name, runs in got.items():
        per_step = [
            np.abs(a - r).reshape(len(r), -1).max(axis=1)
            / np.maximum(1.0, np.abs(r).reshape(len(r), -1).max(axis=1))
            for a, r in zip(runs, refs[name])
        ]
        worst[name] = float(max((e.max(initial=0.0) for e in per_step), default=0.0))
    return worst


def parity(
    bundle: Bundle, precision: str, gate: float, say: Progress
) -> tuple[dict[str, Any], float]:
    """Each backend's max error against PyTorch's golden vectors in one precision, as manifest
    parity entries, and the worst of them. A backend beyond `gate` is an emitter bug: refuse
    to write the bundle rather than ship a silent wrong answer."""
    results: dict[str, Any] = {}
    worst_all = 0.0
    installed = available_backends()
    for name in BACKENDS:
        if name not in installed:
            say(f"  {name}/{precision}: skipped (not installed)")
            continue
        try:
            worst = run_golden(bundle, name, precision)
        except RnnedgeError as e:  # a file its interpreter cannot load or run is a bug
            raise ExportError(
                f"{name} cannot run the {precision} model it was given: {e}; refusing to "
                "write a bundle it cannot run. Please report it."
            ) from e
        err = max(worst.values(), default=0.0)
        results[f"{name}/{precision}"] = {"max_rel_err": err}
        say(f"  {name}/{precision}: max error vs PyTorch {err:.2e}")
        if err > gate:
            bad = max(worst, key=worst.get)
            raise ExportError(
                f"{name} {precision} disagrees with PyTorch on {bad!r} by {err:.2e} "
                f"(gate {gate:g}); refusing to write a wrong bundle. Please report it."
            )
        worst_all = max(worst_all, err)
    return results, worst_all
