"""The generated C's tensor layout against the manifest's, before any call.

The runner sizes every buffer from the manifest, while the C reads and writes the sizes it was
generated for (the `rnnedge_*_sizes` tables in model.c). A bundle whose manifest and graph.json
agree with each other but not with its model.c (edited, or hostile) would make the C write
past a buffer: it is refused here, naming the tensor list, instead."""

from __future__ import annotations

import re

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.graph import Graph, TensorSpec


def check_layout(c_text: bytes, graph: Graph, where: str) -> None:
    c_in = _table(c_text, "rnnedge_input_sizes", where)
    c_out = _table(c_text, "rnnedge_output_sizes", where)
    # C from before token-id inputs has no itemsize table: it read every input as float32
    c_items = _table(c_text, "rnnedge_input_itemsize", where, [4] * len(c_in))
    states = [graph.spec(s.input) for s in graph.states]
    # the graph's order (a probe's run) and the runner's (x, states / data, states) alike
    for what, c_sizes, specs in (
        ("inputs", c_in, graph.inputs),
        ("inputs (x, then the states)", c_in, [graph.inputs[0], *states]),
        ("outputs", c_out, graph.outputs),
        ("outputs (data, then the states)", c_out, [*graph.data_outputs, *states]),
    ):
        if c_sizes != [_size(t) for t in specs]:
            raise BackendError(
                f"{where}: the C's {what} hold {c_sizes} values, the manifest's "
                f"{[_size(t) for t in specs]}"
            )
    items = [np.dtype(t.dtype).itemsize for t in graph.inputs]
    if c_items != items:
        raise BackendError(
            f"{where}: the C reads inputs of {c_items} bytes a value, the manifest's dtypes {items}"
        )


def _size(t: TensorSpec) -> int:
    return int(np.prod(t.shape, dtype=np.int64))


def _table(text: bytes, name: str, where: str, default: list[int] | None = None) -> list[int]:
    m = re.search(rb"\b" + name.encode() + rb"\[\] = \{([^}]*)\};", text)
    if m is None:
        if default is not None:
            return default
        raise BackendError(f"{where}: has no {name} table (not a C file rnnedge generated)")
    return [int(v) for v in m.group(1).split(b",")]
