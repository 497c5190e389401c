"""Lowering of a bidirectional nn.GRU/LSTM/RNN for OFFLINE programs (docs/time.md).

A bidirectional layer cannot stream: its reverse direction reads the sequence from the end.
At one step it is lowered as two independent cells, each with its own lifted state pair:
`{module}.l{k}.h` for the forward direction and `{module}.l{k}.reverse.h` (`.c` for LSTM) for
the reverse one. The outputs are concatenated [forward, reverse] on the feature axis as
PyTorch does (torch/nn/modules/rnn.py). export/offline/partition.py then cuts the graph into
stages, running every reverse cell backward over the buffered sequence. The states' names are
that contract: REVERSE_STATE matches the reverse ones.

PyTorch's h_n (the final states) is not a per-step value of an offline program, so a model
that reads it is refused (H_N marks the tensor; partition.py checks it is dead).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from rnnedge.errors import UnsupportedModelError
from rnnedge.export.capture.builder import GraphBuilder, Sym

REVERSE_STATE = re.compile(r"\.reverse\.[hc](_\d+)?$")
H_N = "h_n_of_bidirectional"

# (builder, x, previous states, layer, direction, hint) -> new states ([h] or [h, c])
CellFn = Callable[[GraphBuilder, Sym, list[Sym], int, int, str], list[Sym]]
LiftFn = Callable[[str, torch.Tensor], Sym]


def lower_bidirectional(
    b: GraphBuilder,
    x: Sym,
    hx: Any,
    *,
    layers: int,
    batch_first: bool,
    out_shape: tuple[int, ...],
    where: str,
    cell: CellFn,
    lift: LiftFn,
) -> tuple[Sym, list[tuple[Sym, Sym]], list[Sym]]:
    """One step of each direction of each layer. Returns the layer output in `out_shape`,
    the (state input, next state) pairs to record, and PyTorch's h_n (and c_n) stacks."""
    parts = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    if any(isinstance(p, Sym) for p in parts):
        raise UnsupportedModelError(
            f"{where}: a bidirectional layer runs offline from its initial state; pass no "
            "state to it (or a constant one)"
        )
    xs = b.shape(x)
    time_axis = 1 if (batch_first and len(xs) == 3) else 0
    if xs[time_axis] != 1:
        raise UnsupportedModelError(
            f"{where}: export needs ONE time step, the example has {xs[time_axis]} along the "
            f"time axis (axis {time_axis})"
        )
    lead = [xs[1 - time_axis]] if len(xs) == 3 else [1]
    names = ["h", "c"][: len(parts)]
    layer_in = b.op("reshape", [x], f"{where}.x", shape=[*lead, xs[-1]])
    pairs: list[tuple[Sym, Sym]] = []
    finals: list[list[Sym]] = [[] for _ in parts]
    for layer in range(layers):
        outs = []
        for d, tag in enumerate(("", ".reverse")):
            hint = f"{where}.l{layer}{tag}"
            prev = [
                lift(f"{hint}.{n}", p[2 * layer + d].reshape(*lead, p.shape[-1]))
                for n, p in zip(names, parts)
            ]
            new = cell(b, layer_in, prev, layer, d, hint)
            pairs += list(zip(prev, new))
            for k, s in enumerate(new):
                finals[k].append(b.op("reshape", [s], H_N, shape=[1, *parts[k].shape[1:]]))
            outs.append(new[0])
        layer_in = b.op("concat", outs, f"{where}.l{layer}.out", axis=-1)
    y = b.op("reshape", [layer_in], f"{where}.y", shape=list(out_shape))
    return y, pairs, [b.op("concat", f, H_N, axis=0) for f in finals]
