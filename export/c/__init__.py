"""Graph (+ QuantPlan) -> a self-contained C99 step (model.c, model.h): the native backend
(runtime/backends/native_backend.py) builds it; `rnnedge export --target c` writes it with a
golden-vector self-check (main_c.py). docs/native.md describes the generated code."""

from __future__ import annotations

from rnnedge.errors import ExportError
from rnnedge.export.c.program import c_file_names, emit_c
from rnnedge.progress import Progress
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.quant.plan import QuantPlan

__all__ = ["bundle_c_files", "c_file_names", "emit_c"]


def bundle_c_files(
    graph: Graph, plan: QuantPlan | None = None, say: Progress | None = None
) -> dict[str, bytes]:
    """The C files export writes into every bundle; none (and a note) when an op has no C
    kernel, so such a model still exports for the interpreters, and only the native backend
    (which then says why) and `--target c` (which refuses, naming the op) are unavailable."""
    try:
        return emit_c(graph, plan)
    except ExportError as e:
        if say is not None:
            say(f"native C not written: {e}")
        return {}
