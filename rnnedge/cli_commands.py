"""The rnnedge commands. Each one first checks everything it was asked for (options, paths
it will write, files it will read, optional packages; cli_preflight.py) and raises a
UsageError (exit code 2) before any work; then it calls one library function and prints a
summary. Errors during the work are failures (exit code 1)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from rnnedge.cli_preflight import read_arrays, read_sequences, require, writable
from rnnedge.errors import (
    CalibrationRangeWarning,
    ExportError,
    InputError,
    ModelSpecError,
    RnnedgeError,
    UsageError,
)
from rnnedge.progress import Progress, ProgressBar, ProgressLines

EXPORT_NEEDS = ("torch", "onnx", "flatbuffers", "tflite")


def _progress(a: argparse.Namespace) -> Progress | None:
    return None if a.quiet else ProgressLines(sys.stderr)


def cmd_export(a: argparse.Namespace) -> None:
    require(EXPORT_NEEDS, "rnnedge export")
    out = Path(a.output)
    if out.exists() and not a.force:
        raise UsageError(f"-o {out}: exists already; pass --force to replace it")
    if out.exists() and not (out / "manifest.json").is_file():
        raise UsageError(f"-o {out}: exists and is not an rnnedge bundle; refusing to replace it")
    writable(a.output, "-o", directory=True)
    config = _export_config(a)
    import torch

    from rnnedge.export.c.main_c import c_target
    from rnnedge.export.model_spec import load_model
    from rnnedge.export.pipeline import export_bundle

    if a.adapter:
        model, example = _adapted(a)
    else:
        model = load_model(a.model, a.weights)
        x = torch.zeros(a.step_shape)
        example = (x, *(torch.zeros(s) for s in a.state_shape)) if a.state_shape else x
    with warnings.catch_warnings():  # the progress lines already say it, once
        warnings.simplefilter("ignore", CalibrationRangeWarning)
        try:
            path = export_bundle(model, example, a.output, config)
        except ExportError as e:
            raise _state_hint(e, a) from e
    print(f"exported {a.model} -> {path}" + (c_target(path) if a.target == "c" else ""))


def _adapted(a: argparse.Namespace) -> tuple:
    """The adapter's StepModel of the transformers model at a.model, and its example."""
    from rnnedge.export.adapters import adapt
    from rnnedge.export.adapters.hf_load import load_hf

    step = adapt(a.adapter, load_hf(a.model, a.weights))
    return step, step.example()


def _export_config(a: argparse.Namespace):
    """The ExportConfig of the command line, checked whole before the model is even loaded."""
    from rnnedge.export.config import ExportConfig

    if a.adapter and (a.step_shape or a.state_shape):
        raise UsageError(
            "--adapter gives the step and state shapes: drop --step-shape/--state-shape"
        )
    if not a.adapter and not a.step_shape:
        raise UsageError("--step-shape is required (ONE step of input, e.g. 1,1,40)")
    step_shape = (1, 1) if a.adapter else a.step_shape  # an adapter's step: one token id

    if a.calibration and a.quantize == "none":
        raise UsageError("--calibration is used only with --quantize int8 or int8-dynamic")
    if (a.int8_budget is not None or a.strict) and a.quantize != "int8":
        raise UsageError("--int8-budget and --strict apply to --quantize int8 only")
    if a.percentile is not None and not a.calibration:
        raise UsageError("--percentile sets how --calibration data is read; pass --calibration")
    calibration = None
    if a.calibration:
        calibration = read_sequences(a.calibration, step_shape, "--calibration")
    try:
        return ExportConfig(
            quantize=a.quantize,
            calibration=calibration,
            percentile=a.percentile,
            int8_budget=None if a.int8_budget is None else {"max_err_pct": a.int8_budget},
            strict=a.strict,
            chunk=a.chunk,
            progress=_progress(a),
        )
    except RnnedgeError as e:
        raise UsageError(str(e)) from e


def _state_hint(e: ExportError, a: argparse.Namespace) -> RnnedgeError:
    """torch.export's "missing a required argument: 'h'" means the model takes its state."""
    if "missing a required argument" in str(e) and not a.state_shape:
        return UsageError(
            f"{e}. A model whose forward takes its states needs their shapes: pass "
            "--state-shape once per state, in order (e.g. --state-shape 1,128)"
        )
    return e


def cmd_generate(a: argparse.Namespace) -> None:
    from rnnedge.runtime import load
    from rnnedge.runtime.generate import decode, encode, greedy, read_vocab

    vocab = read_vocab(a.vocab) if a.vocab else None
    prompt = encode(a.prompt, vocab)
    model = load(a.bundle, backend=a.backend, precision=a.precision)
    ids = greedy(model, prompt, a.tokens)
    print(a.prompt + decode(ids, vocab))


def cmd_inspect(a: argparse.Namespace) -> None:
    if a.board:
        from rnnedge.boards.profiles import get_profile

        try:
            profile = get_profile(a.board)
        except RnnedgeError as e:
            raise UsageError(str(e)) from e
    from rnnedge.runtime.bundle import read_bundle
    from rnnedge.runtime.inspect import describe

    bundle = read_bundle(a.bundle)
    print(describe(bundle))
    if a.board:
        from rnnedge.boards.cost import board_report

        print(board_report(bundle, profile))


def cmd_run(a: argparse.Namespace) -> None:
    writable(a.output, "--output")
    arrays = read_arrays(a.input, "--input")
    if len(arrays) != 1:
        raise UsageError(f"--input {a.input}: holds {len(arrays)} arrays; give one sequence")
    from rnnedge.runtime import load
    from rnnedge.runtime.inputs import split_sequences

    model = load(a.bundle, backend=a.backend, precision=a.precision)
    (arr,) = arrays.values()
    try:
        seqs = split_sequences(arr, model.step_input.shape, f"--input {a.input}")
    except InputError as e:
        raise UsageError(str(e)) from e
    if len(seqs) != 1:
        raise UsageError(f"--input {a.input}: holds {len(seqs)} sequences; run takes one")
    ys = model.run(seqs[0])  # a fresh stream, or an offline program over the sequence
    first = ys if isinstance(ys, np.ndarray) else ys[0]
    where = f"{model.backend_name}/{model.precision}"
    print(f"ran {len(seqs[0])} steps on {where}: output {list(first.shape)}")
    if a.output:
        with open(a.output, "wb") as f:  # np.save(path) would append ".npy" to the name
            np.save(f, first)
        print(f"wrote {a.output}")


def cmd_check(a: argparse.Namespace) -> int:
    from rnnedge.runtime.check.run import CheckConfig

    if a.weights and not a.model:
        raise UsageError("--weights needs --model")
    if a.model:
        require(("torch",), "rnnedge check --model")
    if a.plot:
        require(("matplotlib",), "rnnedge check --plot")
    for path, option in ((a.json, "--json"), (a.junit, "--junit"), (a.plot, "--plot")):
        writable(path, option)
    budgets = {k: v for b in a.budget for k, v in b.items()}
    try:
        config = CheckConfig(
            backends=tuple(a.backend), precisions=tuple(a.precision), steps=a.steps, budgets=budgets
        )
    except RnnedgeError as e:
        raise UsageError(str(e)) from e
    from rnnedge.runtime.bundle import read_bundle

    bundle = read_bundle(a.bundle)
    data, reference = _check_inputs(a, bundle)
    from rnnedge.runtime.check.offline import check_bundle as run_check  # offline or stream
    from rnnedge.runtime.check.report import format_table, write_json, write_junit

    report = run_check(bundle, config, data=data, reference=reference, progress=_progress(a))
    print(format_table(report))
    for path, write in ((a.json, write_json), (a.junit, write_junit)):
        if path:
            write(report, path)
            print(f"wrote {path}")
    if a.plot:
        from rnnedge.runtime.check.plot import write_plot

        write_plot(report, a.plot)
        print(f"wrote {a.plot}")
    return 0 if report.passed else 1


def _check_inputs(a: argparse.Namespace, bundle):
    """--precision, --data and --model checked against the bundle before anything runs."""
    have = sorted({m.precision for m in bundle.manifest.models})
    for p in a.precision:
        if p not in have:
            raise UsageError(f"--precision {p}: {bundle.path} holds {', '.join(have)}")
    from rnnedge.runtime.check.data import load_data

    try:
        data = load_data(a.data, bundle.manifest.step_input.shape) if a.data else None
    except InputError as e:
        raise UsageError(str(e)) from e
    reference = None
    if a.model:  # the only path that imports torch
        from rnnedge.export.check_reference import torch_reference

        try:
            reference = torch_reference(bundle, a.model, a.weights)
        except (ModelSpecError, ExportError) as e:
            raise UsageError(str(e)) from e
    return data, reference


def cmd_demo(a: argparse.Namespace) -> None:
    require((*EXPORT_NEEDS, "sklearn"), "rnnedge demo")
    writable(a.out, "--out", directory=True)
    from rnnedge.demo import run_demo

    print(run_demo(a.out, steps=a.steps, progress=_progress(a)))


def cmd_bench(a: argparse.Namespace) -> None:
    from rnnedge.boards.bench.config import MODES, TIMING_FIELDS, BenchConfig
    from rnnedge.boards.bench.report import Outputs, bench

    if a.peers and a.model:
        require(("torch", "onnx"), "rnnedge bench --peers --model")
    if a.plot:
        require(("matplotlib",), "rnnedge bench --plot")
    writable(a.json, "--json")
    writable(a.plot, "--plot")
    try:
        config = BenchConfig(
            bundle=a.bundle,
            backends=tuple(a.backend),
            precisions=tuple(a.precision),
            modes=tuple(a.mode) or MODES,
            hop_ms=a.hop,
            streams=tuple(a.streams) or (1,),
            **{k: getattr(a, k) for k in TIMING_FIELDS},  # --warmup-steps ... --rounds
            checked=not a.unchecked,
            peers=a.peers,
            model=a.model,
            weights=a.weights,
            board=a.board,
        )
    except RnnedgeError as e:
        raise UsageError(str(e)) from e
    peer_paths = None
    if a.peers and a.model:
        from rnnedge.boards.peers.bench_paths import torch_peer_paths

        peer_paths = torch_peer_paths(a.model, a.weights)
    results = None if a.no_results else a.results
    out = Outputs(json_path=a.json, results_dir=results, plot_path=a.plot)
    progress = (lambda *_: None) if a.quiet else ProgressBar(sys.stderr)
    print(bench(config, out, progress=progress, peer_paths=peer_paths))


def cmd_boards(a: argparse.Namespace) -> None:
    from rnnedge.boards.profiles import boards_report

    print(boards_report())
