"""The rnnedge command line: a thin shell over the library.

Each command parses its arguments, calls one library function and prints a summary. Errors
from the library (RnnedgeError) become one line on stderr and exit code 1; --debug shows the
traceback. Usage errors exit with 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from rnnedge.errors import CalibrationRangeWarning, InputError, RnnedgeError
from rnnedge.runtime.backends import BACKENDS


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} must be integers like 1,1,40") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"shape {text!r} must be positive integers like 1,1,40")
    return dims


def _budget(text: str) -> dict[str, float]:
    """--budget 1e-4 (every precision) or float=1e-5,int8=0.02: scaled_abs_err limits."""
    out = {}
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            prec, _, limit = part.rpartition("=")
            out[prec.strip() or "*"] = float(limit)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"budget {text!r} must be a number or PRECISION=NUMBER,... like float=1e-5,int8=0.02"
        ) from None
    if not out or not all(v > 0 for v in out.values()):
        raise argparse.ArgumentTypeError(f"budget {text!r}: limits must be positive numbers")
    return out


def _say(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def cmd_export(a: argparse.Namespace) -> None:
    import torch

    from rnnedge.export.c.main_c import c_target
    from rnnedge.export.model_spec import load_model
    from rnnedge.export.pipeline import export_bundle

    model = load_model(a.model, a.weights)
    x = torch.zeros(a.step_shape)
    example = (x, *(torch.zeros(s) for s in a.state_shape)) if a.state_shape else x
    calibration = _calibration(a.calibration) if a.calibration else None
    with warnings.catch_warnings():  # the progress lines already say it, once
        warnings.simplefilter("ignore", CalibrationRangeWarning)
        path = export_bundle(
            model,
            example,
            a.output,
            quantize=a.quantize,
            calibration=calibration,
            percentile=a.percentile,
            progress=_say,
        )
    print(f"exported {a.model} -> {path}" + (c_target(path) if a.target == "c" else ""))


def _calibration(path: str) -> list[np.ndarray]:
    """--calibration FILE.npz: every array is one sequence (T, *step shape), in file order."""
    from rnnedge.runtime.npzio import read_npz

    try:
        with open(path, "rb") as f:
            arrays = read_npz(f.read(), what=path)
    except OSError as e:
        raise InputError(f"--calibration {path}: cannot read it ({e.strerror or e})") from e
    return list(arrays.values())


def cmd_inspect(a: argparse.Namespace) -> None:
    from rnnedge.runtime.bundle import read_bundle
    from rnnedge.runtime.inspect import describe

    bundle = read_bundle(a.bundle)
    print(describe(bundle))
    if a.board:
        from rnnedge.boards.cost import board_report
        from rnnedge.boards.profiles import get_profile

        print(board_report(bundle, get_profile(a.board)))


def cmd_run(a: argparse.Namespace) -> None:
    from rnnedge.runtime import load

    try:
        xs = np.load(a.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"--input {a.input}: cannot read a .npy array ({e})") from e
    model = load(a.bundle, backend=a.backend, precision=a.precision)
    ys = model.stream().run(xs)
    first = ys if isinstance(ys, np.ndarray) else ys[0]
    print(
        f"ran {len(xs)} steps on {model.backend_name}/{model.precision}: output {list(first.shape)}"
    )
    if a.output:
        try:
            with open(a.output, "wb") as f:  # np.save(path) would append ".npy" to the name
                np.save(f, first)
        except OSError as e:
            raise InputError(f"--output {a.output}: cannot write it ({e.strerror or e})") from e
        print(f"wrote {a.output}")


def cmd_check(a: argparse.Namespace) -> int:
    from rnnedge.errors import ExportError, ModelSpecError, UnsupportedModelError
    from rnnedge.runtime.bundle import read_bundle
    from rnnedge.runtime.check.data import load_data
    from rnnedge.runtime.check.report import format_table, write_json, write_junit
    from rnnedge.runtime.check.run import CheckConfig, run_check

    if a.weights and not a.model:
        print("rnnedge check: usage error: --weights needs --model", file=sys.stderr)
        return 2
    bundle = read_bundle(a.bundle)
    budgets = {k: v for b in a.budget for k, v in b.items()}
    try:  # what the user passed in options is a usage error (2), the bundle's faults are 1
        config = CheckConfig(
            backends=tuple(a.backend), precisions=tuple(a.precision), steps=a.steps, budgets=budgets
        )
        data = load_data(a.data, bundle.manifest.step_input.shape) if a.data else None
        reference = None
        if a.model:  # the only path that imports torch
            from rnnedge.export.check_reference import torch_reference

            reference = torch_reference(bundle, a.model, a.weights)
    except (InputError, ModelSpecError, ExportError, UnsupportedModelError) as e:
        print(f"rnnedge check: usage error: {e}", file=sys.stderr)
        return 2
    report = run_check(bundle, config, data=data, reference=reference, progress=_say)
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


def cmd_demo(a: argparse.Namespace) -> None:
    from rnnedge.demo import run_demo

    print(run_demo(a.out, steps=a.steps, progress=_say))


def _ms(text: str) -> float:
    """--hop 10ms, 0.01s or 10 (milliseconds)."""
    t = text.strip().lower()
    scale = 1e3 if t.endswith("s") and not t.endswith("ms") else 1.0
    try:
        value = float(t.removesuffix("ms").removesuffix("s")) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"duration {text!r} must look like 10ms or 0.01s"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} must not be negative")
    return value


def cmd_bench(a: argparse.Namespace) -> None:
    from rnnedge.boards.bench.config import MODES, TIMING_FIELDS, BenchConfig
    from rnnedge.boards.bench.report import Outputs, bench
    from rnnedge.boards.peers.bench_paths import torch_peer_paths  # imports torch only to open
    from rnnedge.progress import ProgressBar

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
    peer_paths = torch_peer_paths(a.model, a.weights) if a.peers and a.model else None
    results = None if a.no_results else a.results
    out = Outputs(json_path=a.json, results_dir=results, plot_path=a.plot)
    print(bench(config, out, progress=ProgressBar(sys.stderr), peer_paths=peer_paths))


def cmd_boards(a: argparse.Namespace) -> None:
    from rnnedge.boards.profiles import boards_report

    print(boards_report())


def _add_export(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a PyTorch model to a bundle")
    e.add_argument("model", help="path/to/file.py:factory, package.module:factory, or file.pt2")
    e.add_argument(
        "--weights", help="state_dict (.pt, read with weights_only=True) or .safetensors"
    )
    e.add_argument(
        "--step-shape", type=_shape, required=True, help="ONE step of input, e.g. 1,1,40"
    )
    e.add_argument(
        "--state-shape",
        type=_shape,
        action="append",
        default=[],
        help="for a model whose forward(x, *states) takes its states: one per state, in order",
    )
    e.add_argument("--quantize", default="none", choices=["none", "int8", "int8-dynamic"])
    e.add_argument(
        "--calibration", help=".npz of sequences (T, *step shape), one per array, for int8"
    )
    e.add_argument(
        "--percentile",
        type=float,
        help="calibrate int8 ranges on the [100-P, P] percentiles instead of min/max, e.g. 99.99",
    )
    e.add_argument("-o", "--output", required=True, help="bundle directory to write (NAME.rnnedge)")
    e.add_argument("--target", default="bundle", choices=["bundle", "c"], help="c: + NAME_c/, C")
    e.set_defaults(func=cmd_export)


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("inspect", help="describe a bundle")
    i.add_argument("bundle")
    i.add_argument("--board", help="add the cost model's estimates for a board (see `boards`)")
    i.set_defaults(func=cmd_inspect)


def _add_run(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run a bundle over a sequence of steps")
    r.add_argument("bundle")
    r.add_argument("--input", required=True, help=".npy of shape (T, *step shape)")
    r.add_argument("--output", help="write the outputs (T, *output shape) to this .npy")
    r.add_argument("--backend", default="auto", choices=["auto", *BACKENDS])
    r.add_argument("--precision", default="float")
    r.set_defaults(func=cmd_run)


def _add_check(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check", help="check every backend x precision against the reference")
    c.add_argument("bundle")
    c.add_argument("--data", help=".npz of input sequences (T, *step) or (N, T, *step) [+ labels]")
    c.add_argument("--model", help="recompute the reference with PyTorch from this MODEL spec")
    c.add_argument("--weights", help="state_dict or .safetensors for --model")
    c.add_argument("--steps", type=int, help="drive one stream of N steps (inputs looped)")
    c.add_argument(
        "--budget",
        type=_budget,
        action="append",
        default=[],
        help="error limit (max abs / max(1, |ref|)): 1e-4 for all, or float=1e-5,int8=0.02",
    )
    c.add_argument(
        "--backend",
        action="append",
        default=[],
        choices=BACKENDS,
        help="only these (repeatable)",
    )
    c.add_argument("--precision", action="append", default=[], help="only these (repeatable)")
    c.add_argument("--json", help="write the report as JSON (schema: docs/check.md)")
    c.add_argument("--junit", help="write JUnit XML: one testcase per backend x precision x output")
    c.add_argument("--plot", help="write error vs step as a PNG (needs rnnedge[plot])")
    c.set_defaults(func=cmd_check)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="train a small GRU on a real dataset, export it and stream it")
    d.add_argument("--out", default="build/demo", help="directory for the demo's bundle")
    d.add_argument("--steps", type=int, default=5000, help="steps per latency measurement")
    d.set_defaults(func=cmd_demo)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="latency, memory and size on every backend, with peers")
    b.add_argument("bundle")
    b.add_argument(
        "--backend",
        action="append",
        default=[],
        choices=BACKENDS,
        help="only these (repeatable; default: every installed one)",
    )
    b.add_argument(
        "--precision",
        action="append",
        default=[],
        help="only these (repeatable; default: every precision in the bundle)",
    )
    b.add_argument(
        "--mode",
        action="append",
        default=[],
        choices=["back-to-back", "paced"],
        help="only these (repeatable; default: both)",
    )
    b.add_argument("--hop", type=_ms, default=10.0, help="paced mode: one call every HOP (10ms)")
    b.add_argument(
        "--streams",
        type=int,
        action="append",
        default=[],
        help="streams stepped per call, batched (repeatable; default 1)",
    )
    b.add_argument("--steps", type=int, default=2000, help="at least N timed calls (2000)")
    b.add_argument("--seconds", type=float, default=1.0, help="and at least S seconds (1.0)")
    b.add_argument("--paced-steps", type=int, default=250, help="paced mode: at least N calls")
    b.add_argument("--paced-seconds", type=float, default=0.0, help="paced: at least S seconds")
    b.add_argument("--rounds", type=int, default=3, help="interleaved rounds, pooled (3)")
    b.add_argument("--warmup-steps", type=int, default=200, help="warm-up calls (200)")
    b.add_argument("--warmup-seconds", type=float, default=0.2, help="and warm-up seconds (0.2)")
    b.add_argument("--unchecked", action="store_true", help="time stream(checked=False)")
    b.add_argument(
        "--peers",
        action="store_true",
        help="also time raw interpreter calls and, with --model, PyTorch and ORT",
    )
    b.add_argument("--model", help="the PyTorch MODEL spec of the bundle, for the torch peers")
    b.add_argument("--weights", help="state_dict or .safetensors for --model")
    b.add_argument("--board", help="record under this board profile (default: detect)")
    b.add_argument(
        "--json", help="write the result as JSON (schema: boards/bench/bench_schema.json)"
    )
    b.add_argument(
        "--results",
        default="results",
        help="append the result to RESULTS/<board>.jsonl (default: results)",
    )
    b.add_argument("--no-results", action="store_true", help="do not append to a results file")
    b.add_argument("--plot", help="write the latency CDF per path as a PNG (needs rnnedge[plot])")
    b.set_defaults(func=cmd_bench)


def _add_boards(sub: argparse._SubParsersAction) -> None:
    bo = sub.add_parser("boards", help="list the board profiles and detect this machine")
    bo.set_defaults(func=cmd_boards)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnedge", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    _add_export(sub)
    _add_inspect(sub)
    _add_run(sub)
    _add_check(sub)
    _add_demo(sub)
    _add_bench(sub)
    _add_boards(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)  # commands that judge (check) return their exit code
    except RnnedgeError as e:
        if args.debug:
            raise
        print(f"rnnedge {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rnnedge {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a file the user named: unreadable, unwritable, a full disk
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"rnnedge {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
