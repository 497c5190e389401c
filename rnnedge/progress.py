"""Progress of long library calls. The library never prints: it calls the callback it is
given, and the CLI hands in one that writes to stderr.

  Progress      `progress(line)`: export, calibration and check say what they are doing. A
                line holding a count "DONE/TOTAL" (e.g. "calibration: sequence 3/200 (...)")
                is a step of a long loop: ProgressLines draws all of them as ONE bar.
  TaskProgress  `progress(done, total, what)`: bench counts its tasks; ProgressBar draws it

Both bars show the rate and the time left; on a terminal they redraw in place, elsewhere (a
CI log) they print the first and the last count only. --quiet hands in no callback at all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[str], None]
TaskProgress = Callable[[int, int, str], None]

WIDTH = 24
COUNT = re.compile(r"^(?P<head>.*?)(?P<done>\d+)/(?P<total>\d+)\b")


def bar_text(done: int, total: int, seconds: float, what: str) -> str:
    filled = WIDTH * done // max(total, 1)
    if seconds < 0.05 or done == 0:  # too early for a rate that means anything (or one of 0)
        speed = eta = "-"
    else:
        rate = done / seconds
        speed = f"{rate:.1f}/s"
        eta = f"{(total - done) / rate:.1f}s left" if done < total else f"{seconds:.1f}s"
    return f"  [{'#' * filled}{'-' * (WIDTH - filled)}] {done}/{total} {speed} {eta} {what}"


class ProgressBar:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._start = time.monotonic()

    def __call__(self, done: int, total: int, what: str) -> None:
        text = bar_text(done, total, time.monotonic() - self._start, what)
        if self._tty:  # redraw in place; pad so a shorter line erases a longer one
            end = "\n" if done >= total else ""
            self._stream.write("\r" + text[:119].ljust(119) + end)
        elif done in (0, 1, total):
            self._stream.write(text + "\n")
        self._stream.flush()


class ProgressLines:
    """A Progress for the CLI: plain lines as they come, counted lines as one bar."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._head: str | None = None  # the counted loop being drawn
        self._start = 0.0

    def __call__(self, line: str) -> None:
        m = COUNT.match(line)
        if m is None:
            self._end_bar()
            self._stream.write(f"  {line}\n")
        else:
            done, total, head = int(m["done"]), int(m["total"]), m["head"].strip()
            if head != self._head:
                self._end_bar()
                self._head, self._start = head, time.monotonic()
            text = bar_text(done, total, time.monotonic() - self._start, head.rstrip(":"))
            if self._tty:
                self._stream.write("\r" + text[:119].ljust(119))
            elif done in (1, total):
                self._stream.write(text + "\n")
            if done >= total:
                self._end_bar()
        self._stream.flush()

    def _end_bar(self) -> None:
        if self._head is not None and self._tty:
            self._stream.write("\n")
        self._head = None
