"""What every exported bundle starts from, streaming or offline: the manifest of its graph,
the checked task, and the golden input sequences."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnedge.errors import ExportError
from rnnedge.quantize.calibrate import check_sequences
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.inputs import sample_input
from rnnedge.runtime.manifest import FLOAT_MODEL_FILES, Manifest, Task, state_specs
from rnnedge.version import __version__

GOLDEN_SEQUENCES = 3
GOLDEN_STEPS = 64


def graph_manifest(graph: Graph, **fields: Any) -> Manifest:
    """The manifest of `graph`'s inputs, outputs and states; `fields` add to it or override
    its defaults (the float model files, no files yet)."""
    base: dict[str, Any] = {
        "producer": f"rnnedge {__version__}",
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "states": state_specs(graph),
        "models": FLOAT_MODEL_FILES,
        "files": {},
    }
    return Manifest(**{**base, **fields})


def checked_task(task: Task | None, graph: Graph) -> Task | None:
    names = [o.name for o in graph.data_outputs]
    if task is not None and task.output is not None and task.output not in names:
        raise ExportError(f"task output {task.output!r} is not a model output (outputs: {names})")
    return task


def golden_inputs(
    graph: Graph, golden: list[np.ndarray] | None, calib: list[np.ndarray] | None
) -> list[np.ndarray]:
    """The user's golden sequences, else the first calibration sequences, else seeded N(0, 1)
    (or token ids for an integer input, runtime/inputs.py)."""
    given = golden if golden is not None else (calib[:GOLDEN_SEQUENCES] if calib else None)
    if given is not None:
        return check_sequences(graph, given, "golden")
    rng = np.random.default_rng(0)  # fixed seed: the same model gives the same bundle
    x = graph.inputs[0]
    return [sample_input(graph, x, rng, (GOLDEN_STEPS,)) for _ in range(GOLDEN_SEQUENCES)]
