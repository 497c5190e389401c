"""The rnnedge command line's arguments: one builder per command (the commands are in
cli_commands.py). argparse's own errors exit with 2, like every other usage error."""

from __future__ import annotations

import argparse

from rnnedge import cli_commands as commands
from rnnedge.runtime.backends import BACKENDS


def shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} must be integers like 1,1,40") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"shape {text!r} must be positive integers like 1,1,40")
    return dims


def budget(text: str) -> dict[str, float]:
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


def duration(text: str) -> float:
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


def add_export(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a PyTorch model to a bundle")
    e.add_argument(
        "model",
        help="path/to/file.py:factory, package.module:factory, or file.pt2; with --adapter a "
        "transformers from_pretrained directory or config.json",
    )
    e.add_argument(
        "--adapter",
        choices=adapter_names(),
        help="step adapter for a library model (docs/rwkv-mamba.md): no --step-shape needed",
    )
    e.add_argument(
        "--weights", help="state_dict (.pt, read with weights_only=True) or .safetensors"
    )
    e.add_argument("--step-shape", type=shape, help="ONE step of input, e.g. 1,1,40 (required)")
    e.add_argument(
        "--state-shape",
        type=shape,
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
    e.add_argument("--int8-budget", type=float, metavar="PCT", help="int8 max error, %% of range")
    e.add_argument(
        "--strict",
        action="store_true",
        help="int8: refuse when all-int8 misses the budget, instead of keeping tensors float",
    )
    e.add_argument(
        "--chunk", type=int, metavar="K", help="also emit K-step chunk models (docs/time.md)"
    )
    e.add_argument("-o", "--output", required=True, help="bundle directory to write (NAME.rnnedge)")
    e.add_argument("--target", default="bundle", choices=["bundle", "c"], help="c: + NAME_c/, C")
    e.add_argument("--force", action="store_true", help="replace OUTPUT if it is a bundle already")
    e.set_defaults(func=commands.cmd_export)


def adapter_names() -> list[str]:
    """The step adapters' names, without importing torch (export/adapters/__init__.py)."""
    return ["hf-rwkv", "hf-mamba", "hf-xlstm"]


def add_generate(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="greedy text from a token-in / logits-out bundle")
    g.add_argument("bundle")
    g.add_argument("--prompt", required=True, help="text to start from")
    g.add_argument("--tokens", type=int, default=200, help="how many tokens to generate")
    g.add_argument("--vocab", help="JSON list of token strings (default: byte-level, id = byte)")
    g.add_argument("--backend", default="auto", choices=["auto", *BACKENDS])
    g.add_argument("--precision", default="float")
    g.set_defaults(func=commands.cmd_generate)


def add_inspect(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("inspect", help="describe a bundle")
    i.add_argument("bundle")
    i.add_argument("--board", help="add the cost model's estimates for a board (see `boards`)")
    i.set_defaults(func=commands.cmd_inspect)


def add_run(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run a bundle over a sequence of steps")
    r.add_argument("bundle")
    r.add_argument(
        "--input", required=True, help=".npy (or one-array .npz) of shape (T, *step shape)"
    )
    r.add_argument("--output", help="write the outputs (T, *output shape) to this .npy")
    r.add_argument("--backend", default="auto", choices=["auto", *BACKENDS])
    r.add_argument("--precision", default="float")
    r.set_defaults(func=commands.cmd_run)


def add_check(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check", help="check every backend x precision against the reference")
    c.add_argument("bundle")
    c.add_argument("--data", help=".npz of input sequences (T, *step) or (N, T, *step) [+ labels]")
    c.add_argument("--model", help="recompute the reference with PyTorch from this MODEL spec")
    c.add_argument("--weights", help="state_dict or .safetensors for --model")
    c.add_argument("--steps", type=int, help="drive one stream of N steps (inputs looped)")
    c.add_argument(
        "--budget",
        type=budget,
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
    c.set_defaults(func=commands.cmd_check)


def add_demo(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="train a small GRU on a real dataset, export it and stream it")
    d.add_argument("--out", default="build/demo", help="directory for the demo's bundle")
    d.add_argument("--steps", type=int, default=5000, help="steps per latency measurement")
    d.set_defaults(func=commands.cmd_demo)


def add_bench(sub: argparse._SubParsersAction) -> None:
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
    b.add_argument(
        "--hop", type=duration, default=10.0, help="paced mode: one call every HOP (10ms)"
    )
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
    b.set_defaults(func=commands.cmd_bench)


def add_boards(sub: argparse._SubParsersAction) -> None:
    bo = sub.add_parser("boards", help="list the board profiles and detect this machine")
    bo.set_defaults(func=commands.cmd_boards)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnedge", description="rnnedge: one-step bundles of recurrent models for the edge"
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress on stderr (errors still show)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    for add in (
        add_export,
        add_inspect,
        add_run,
        add_generate,
        add_check,
        add_demo,
        add_bench,
        add_boards,
    ):
        add(sub)
    for command in sub.choices.values():  # `rnnedge export ... -q` works as well
        command.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress"
        )
    return p
