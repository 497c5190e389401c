"""One step on zeros when a backend opens, so a model file that cannot run, or whose outputs
differ from what the manifest declares, is refused at load with the file named, never at the
first real step and never as a silently wrong answer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.bundle import Bundle


def probe(run: Callable[[list[np.ndarray]], list[np.ndarray]], bundle: Bundle, label: str) -> None:
    """`label` names the backend and its model file in errors, e.g. "LiteRT (model.tflite)"."""
    graph = bundle.graph
    feeds = [np.zeros(t.shape, t.dtype) for t in graph.inputs]  # id 0 is valid
    outs = run(feeds)
    if len(outs) != len(graph.outputs):
        raise BackendError(
            f"{bundle.path}: {label} gives {len(outs)} outputs, the manifest declares "
            f"{len(graph.outputs)}"
        )
    for spec, out in zip(graph.outputs, outs):
        if np.shape(out) != spec.shape:
            raise BackendError(
                f"{bundle.path}: {label} output {spec.name!r} has shape {list(np.shape(out))}, "
                f"the manifest declares {list(spec.shape)}"
            )


def model_file(bundle: Bundle, fmt: str, precision: str) -> str:
    """The name of the model file of format `fmt` a backend runs (for error messages)."""
    for m in bundle.manifest.models:
        if m.backend == fmt and m.precision == precision:
            return m.path
    return f"{fmt}/{precision}"
