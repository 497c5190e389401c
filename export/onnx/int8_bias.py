"""An int32 bias written short (issue 16), as constants that onnxruntime folds back into one
int32 initializer when the session loads, so the step computes the same integers at the same
speed (tested):
  - a bias whose integers all fit int16 (most do: on the GRU / LSTM 64 test models all but
    the LSTM head's, where b / (x_s w_s[n]) passes 2^15) is stored as int16 and widened by an
    ONNX Cast (https://onnx.ai/onnx/operators/onnx__Cast.html): 2 bytes a row instead of 4;
  - a long all-zero head is left out and an ONNX Pad
    (https://onnx.ai/onnx/operators/onnx__Pad.html) restores it: a GRU's hidden-side linear
    carries the r and z biases folded into the input side (export/capture/rnn.py), so 2/3 of
    its bias is zeros (512 bytes at hidden 64)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto

if TYPE_CHECKING:
    from rnnedge.export.onnx.emitter import OnnxEmitter

MIN_ZEROS = 16  # shorter zero heads are not worth a node
I16 = np.iinfo(np.int16)


def bias_input(em: OnnxEmitter, name: str, make: Callable[[], np.ndarray]) -> str:
    """The ONNX name of the int32 bias `make()` for Graph constant `name`: an initializer, or
    Cast(int16) and / or Pad(tail, [head, 0]) of a shorter one."""
    value = np.asarray(make())
    nonzero = np.flatnonzero(value)
    head = int(nonzero[0]) if len(nonzero) else len(value)
    if value.ndim != 1 or head < MIN_ZEROS or head == len(value):
        head = 0
    tail = value[head:]
    narrow = bool(tail.size) and I16.min <= tail.min() and tail.max() <= I16.max
    if not narrow and not head:
        return em.derived(("bias", name), name, lambda: value)
    kept = tail.astype(np.int16) if narrow else tail
    out = em.derived(("bias", name), name, lambda: kept)
    if narrow:
        out = em.add("Cast", [out], to=TensorProto.INT32)
    if head:
        pads = em.i64([head, 0], "pads")
        out = em.add("Pad", [out, pads])
    return out
