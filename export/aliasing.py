"""Refuse example inputs that share memory, before torch.export sees them.

torch.export treats two example inputs backed by the same storage as ONE tensor: for
`h0 = torch.zeros(1, H); example = (x, h0, h0)` the captured LSTM cell reads h where the
model reads c, and `(z, z)` for `(x, h)` drops x. The captured step then differs from the
model at every step after the first, and its own reference runs the same aliased program, so
no later check sees it. A user who means one value twice must pass two tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import _pytree as pytree

from rnnedge.errors import ExportError


def check_distinct(example: Any) -> None:
    """Raises ExportError naming the first two example inputs whose memory overlaps."""
    args = example if isinstance(example, tuple) else (example,)
    leaves = [t for t in pytree.tree_leaves(args) if isinstance(t, torch.Tensor)]
    spans = [(i, *_span(t)) for i, t in enumerate(leaves) if t.numel() > 0]
    for k, (i, storage, lo, hi) in enumerate(spans):
        for j, other, lo2, hi2 in spans[k + 1 :]:
            if storage == other and lo < hi2 and lo2 < hi:
                raise ExportError(
                    f"example inputs {i} and {j} are the same tensor (or share memory); "
                    "torch.export would capture them as one input and the stream would read one "
                    f"state where the model reads the other: pass distinct tensors, e.g. "
                    f"example input {j} as .clone()"
                )


def _span(t: torch.Tensor) -> tuple[int, int, int]:
    """(storage address, first byte, one past the last byte) that the tensor can touch."""
    size = t.element_size()
    extent = 1 + sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride()))
    start = t.untyped_storage().data_ptr() + t.storage_offset() * size
    return t.untyped_storage().data_ptr(), start, start + extent * size
