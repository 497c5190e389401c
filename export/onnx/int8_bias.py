"""An int32 bias with a long all-zero head, written short (issue 16): a GRU's hidden-side
linear carries the r and z biases folded into the input side (export/capture/rnn.py), so 2/3
of its int32 bias is zeros (512 bytes at hidden 64). The file holds the nonzero tail and an
ONNX Pad (https://onnx.ai/onnx/operators/onnx__Pad.html) of constants restores the zeros;
onnxruntime folds it into one initializer when the session loads, so the step computes the
same integers at the same speed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rnnedge.export.onnx.emitter import OnnxEmitter

MIN_ZEROS = 16  # shorter zero heads are not worth a node


def bias_input(em: OnnxEmitter, name: str, make: Callable[[], np.ndarray]) -> str:
    """The ONNX name of the int32 bias `make()` for Graph constant `name`: an initializer, or
    Pad(tail, [head, 0]) when its first MIN_ZEROS or more entries are zeros."""
    value = np.asarray(make())
    nonzero = np.flatnonzero(value)
    head = int(nonzero[0]) if len(nonzero) else len(value)
    if value.ndim != 1 or head < MIN_ZEROS or head == len(value):
        return em.derived(("bias", name), f"{name}.int32", lambda: value)
    tail = em.derived(("bias tail", name), f"{name}.int32.tail", lambda: value[head:])
    pads = em.derived(("bias pads", name), f"{name}.pads", lambda: np.array([head, 0], np.int64))
    return em.add("Pad", [tail, pads])
