"""The int8 plan of an embedding table (`gather`), for plan_int8 (int8.py)."""

from __future__ import annotations

from rnnedge.quantize.int8_dynamic import weight_scales
from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.quant.plan import TensorQuant


def table_entry(graph: Graph, node: Node) -> TensorQuant:
    """An embedding table [V, D]: int8, symmetric, one scale per row (axis 0), as a linear's
    weight: a row is dequantized as it is gathered, so a rare token's small row keeps its own
    resolution (one scale for the whole table would give it few levels)."""
    scale = weight_scales(graph.constants[node.inputs[0]])
    return TensorQuant(
        tensor=node.inputs[0], dtype="int8", node=node.outputs[0], axis=0, scale=scale,
        zero_point=(0,) * len(scale), source="weight",
    )  # fmt: skip
