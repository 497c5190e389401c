"""The rnnedge command line: a thin shell over the library.

Each command parses its arguments, calls one library function and prints a summary. Errors
from the library (RnnedgeError) become one line on stderr and exit code 1; --debug shows the
traceback. Usage errors exit with 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from rnnedge.errors import InputError, RnnedgeError


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} must be integers like 1,1,40") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"shape {text!r} must be positive integers like 1,1,40")
    return dims


def _say(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def cmd_export(a: argparse.Namespace) -> None:
    import torch

    from rnnedge.export.model_spec import load_model
    from rnnedge.export.pipeline import export_bundle

    model = load_model(a.model, a.weights)
    x = torch.zeros(a.step_shape)
    example = (x, *(torch.zeros(s) for s in a.state_shape)) if a.state_shape else x
    path = export_bundle(model, example, a.output, quantize=a.quantize, progress=_say)
    print(f"exported {a.model} -> {path}")


def cmd_inspect(a: argparse.Namespace) -> None:
    from rnnedge.runtime.bundle import read_bundle
    from rnnedge.runtime.inspect import describe

    print(describe(read_bundle(a.bundle)))


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
        np.save(a.output, first)
        print(f"wrote {a.output}")


def cmd_demo(a: argparse.Namespace) -> None:
    from rnnedge.demo import run_demo

    print(run_demo(a.out, steps=a.steps, progress=_say))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnedge", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

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
    e.add_argument("-o", "--output", required=True, help="bundle directory to write (NAME.rnnedge)")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("inspect", help="describe a bundle")
    i.add_argument("bundle")
    i.set_defaults(func=cmd_inspect)

    r = sub.add_parser("run", help="run a bundle over a sequence of steps")
    r.add_argument("bundle")
    r.add_argument("--input", required=True, help=".npy of shape (T, *step shape)")
    r.add_argument("--output", help="write the outputs (T, *output shape) to this .npy")
    r.add_argument("--backend", default="auto", choices=["auto", "litert", "onnxruntime", "numpy"])
    r.add_argument("--precision", default="float")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="train a small GRU on a real dataset, export it and stream it")
    d.add_argument("--out", default="build/demo", help="directory for the demo's bundle")
    d.add_argument("--steps", type=int, default=5000, help="steps per latency measurement")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except RnnedgeError as e:
        if args.debug:
            raise
        print(f"rnnedge {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rnnedge {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
