"""The rnnedge command line: a thin shell over the library.

Each command (cli_commands.py) checks what it was asked for, calls one library function and
prints a summary. One exit-code rule for every command:
  0  done (check: every backend x precision within budget)
  1  the work failed: a bad model or bundle, a backend error, a check that fails
  2  a usage error, found before any work starts: a bad option, an output path that cannot be
     written, an input file of the wrong kind or shape, a missing optional package
Errors are one line on stderr ("rnnedge CMD: error: ..."); --debug shows the traceback.
Warnings the library raises (a backend fallback, int8 ranges) are one line each as well.
A closed stdout (`rnnedge inspect B | head -1`) ends the command quietly, as Unix tools do.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from rnnedge.cli_parser import parser
from rnnedge.errors import RnnedgeError, UsageError

__all__ = ["main", "parser"]

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what `cat` returns when its reader goes away


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # `python -m rnnedge` puts the working directory on sys.path and the console script does
    # not: without it `rnnedge export pkg.module:factory` could not import a local package
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            code = args.func(args)  # commands that judge (check) return their exit code
    except BrokenPipeError:
        return _closed_stdout()
    except RnnedgeError as e:
        if args.debug:
            raise
        print(f"rnnedge {args.command}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except KeyboardInterrupt:
        print(f"rnnedge {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a file the user named: unreadable, unwritable, a full disk
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"rnnedge {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_stdout()
    return code if isinstance(code, int) else 0


def _one_line_warning(command: str):
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"rnnedge {command}: warning: {message}", file=sys.stderr, flush=True)

    return show


def _closed_stdout() -> int:
    # Python would report the unflushed rest of stdout at exit ("Exception ignored ... Broken
    # pipe"); point the descriptor at /dev/null so there is nothing left to fail
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return SIGPIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
