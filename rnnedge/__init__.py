"""rnnedge: compile PyTorch GRU/LSTM/RNN models into one-step bundles and stream them.

    rnnedge.export(model, example, out="kws.rnnedge")        # needs torch
    m = rnnedge.load("kws.rnnedge", backend="auto")          # needs numpy only
    s = m.stream(); y = s.step(x)

Importing rnnedge never imports torch; `rnnedge.export` loads it on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from rnnedge.errors import RnnedgeError
from rnnedge.runtime import load
from rnnedge.version import __version__

__all__ = ["RnnedgeError", "__version__", "export", "load"]


def __getattr__(name: str) -> Any:
    # rnnedge.export is both the export subpackage and the export function (see
    # export/__init__.py); importing it lazily keeps torch out of runtime-only installs.
    if name == "export":
        return importlib.import_module("rnnedge.export")
    raise AttributeError(f"module 'rnnedge' has no attribute {name!r}")
