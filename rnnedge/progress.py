"""Progress of long library calls. The library never prints: it calls the callback it is
given, and the CLI hands in one that writes to stderr.

  Progress      `progress(line)`: export, calibration and check say what they are doing
  TaskProgress  `progress(done, total, what)`: bench counts its tasks; ProgressBar draws it
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[str], None]
TaskProgress = Callable[[int, int, str], None]

WIDTH = 24


class ProgressBar:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._start = time.monotonic()

    def __call__(self, done: int, total: int, what: str) -> None:
        filled = WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (WIDTH - filled)
        text = f"  [{bar}] {done}/{total} {time.monotonic() - self._start:5.1f}s {what}"
        if self._tty:  # redraw in place; pad so a shorter line erases a longer one
            end = "\n" if done >= total else ""
            self._stream.write("\r" + text[:119].ljust(119) + end)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
