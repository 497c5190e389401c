"""PyTorch's side of an offline program: where time runs in the model's input and outputs,
and the model's own outputs over whole sequences (the golden vectors and parity reference).

The reference is the model run the way its user runs it: forward() once over the whole
sequence, never step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils import _pytree as pytree

from rnnedge.errors import UnsupportedModelError
from rnnedge.runtime.graph import Graph

PROBE_STEPS = 3


@dataclass(frozen=True)
class SequenceModel:
    """The user's model over whole sequences, in the program's convention: (T, *step shape)
    in, each output (T, *output step shape) out."""

    model: torch.nn.Module
    time_axis: int  # of the model's input
    output_axes: tuple[int, ...]  # of each output

    def __call__(self, xs: np.ndarray) -> list[np.ndarray]:
        x = torch.from_numpy(np.concatenate(np.asarray(xs, np.float32), axis=self.time_axis))
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                outs = pytree.tree_leaves(self.model(x))
        finally:
            self.model.train(was)
        return [_per_step(o.numpy(), a) for o, a in zip(outs, self.output_axes)]


def _per_step(y: np.ndarray, axis: int) -> np.ndarray:
    """(..., T at `axis`, ...) -> (T, ..., 1 at `axis`, ...): one output step per row."""
    return np.ascontiguousarray(np.expand_dims(np.moveaxis(y, axis, 0), axis + 1))


def sequence_model(model: torch.nn.Module, example: torch.Tensor, graph: Graph) -> SequenceModel:
    """Finds the time axis of the input (the size-1 axis of the example that is not the batch
    axis capture found) and of each output (the one axis that grows with T), or refuses."""
    shape = tuple(example.shape)
    batch = graph.inputs[0].batch_axis
    candidates = [a for a, d in enumerate(shape) if d == 1 and a != batch]
    if len(candidates) != 1:
        raise UnsupportedModelError(
            f"offline export: cannot tell the time axis of the input {list(shape)} (size-1 axes "
            f"{candidates} besides the batch axis); give the example a batch of 2 or more"
        )
    axis = candidates[0]
    probe = torch.randn(*shape[:axis], PROBE_STEPS, *shape[axis + 1 :], generator=_seeded())
    with torch.no_grad():
        outs = pytree.tree_leaves(model(probe))
    axes = []
    for out, spec in zip(outs, graph.data_outputs):
        grown = [
            i for i, (a, b) in enumerate(zip(out.shape, spec.shape)) if (a, b) == (PROBE_STEPS, 1)
        ]
        if len(out.shape) != len(spec.shape) or len(grown) != 1:
            raise UnsupportedModelError(
                f"offline export: output {spec.name!r} has shape {list(out.shape)} over "
                f"{PROBE_STEPS} steps, {list(spec.shape)} over one: an offline program returns "
                "one value per step (a tagger's per-step output); reduce over time (last step, "
                "mean) after model.run"
            )
        axes.append(grown[0])
    return SequenceModel(model=model, time_axis=axis, output_axes=tuple(axes))


def _seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)
