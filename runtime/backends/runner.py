"""Runners: the per-stream hot path. A runner owns its state and steps it in place.

One runner serves one Stream, or one Streams group (n streams stacked along the batch axes
into one call). Each backend file (litert_backend.py, onnxruntime_backend.py,
numpy_backend.py) holds its own runner beside its Backend, doing the least work per step.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rnnedge.runtime.graph import TensorSpec


class Runner(Protocol):
    def step(self, x: np.ndarray) -> list[np.ndarray]:
        """One step: returns the data outputs (arrays the caller owns), keeps the new state."""

    def get_state(self) -> list[np.ndarray]:
        """Copies of the current state, in graph.states order."""

    def set_state(self, states: list[np.ndarray]) -> None:
        """Replace the state (arrays already checked, batch-shaped)."""


def batch_shape(spec: TensorSpec, streams: int) -> tuple[int, ...]:
    """The shape of `spec` for `streams` streams stacked along its batch axis."""
    if streams == 1:
        return spec.shape
    shape = list(spec.shape)
    shape[spec.batch_axis] *= streams
    return tuple(shape)
