"""Weight-only int8 for plan_int8 (int8.py): a linear or an embedding whose activations the
plan keeps float still stores its matrix int8.

Before, a float-kept group kept the weights of its linears (and an embedding's table) float
too: mixed precision on the trained tiny RWKV and Mamba kept many groups float for accuracy,
and their int8 files were 47-80% of the float ones. Now such a linear stores its weight as
full int8 does (symmetric per output channel, the same float16-exact scales, quantize_weight)
and computes in float with the dequantized weights: float in, float out, y = x (w_q s)^T + b,
the bias float. w_q * s is exact in float32 (8-bit integer times an 11-bit mantissa), so every
backend can run the identical float matmul. An embedding keeps the full int8 table entry
(int8_gather.py): its rows are dequantized as they are gathered, and stay float.

The entry is the one a full-int8 linear's weight has ("weight", axis 0); a backend tells the
two apart by the activations: an int8 linear reads and writes int8, a weight-only one does not
(runtime/quant/int8.py). Whether a float-kept linear gets int8 weights is measured by mixed
precision (quantize/mixed.py: `float_weights` keeps a weight float when its rounding alone
breaks the budget).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

import numpy as np

from rnnedge.quantize.fidelity import Judged, compare, float_outputs
from rnnedge.quantize.int8_dynamic import half_exact, weight_scales
from rnnedge.quantize.int8_gather import table_entry
from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.quant.plan import QuantPlan, TensorQuant, weight_only_matrix

MATRIX = {"linear": 1, "gather": 0}  # op -> which input holds its matrix


def entries(graph: Graph, node: Node, float_weights: Collection[str] | None) -> list[TensorQuant]:
    """The int8 entry of a float-kept linear's weight or embedding's table (none when the node
    is not one, its matrix is no finite 2-D constant, or `float_weights` names its output;
    `float_weights` None: every float-kept matrix stays float, the plan before weight-only)."""
    if node.op not in MATRIX or float_weights is None or node.outputs[0] in float_weights:
        return []
    w = graph.constants.get(node.inputs[MATRIX[node.op]])
    if w is None or w.ndim != 2 or not np.isfinite(w).all():
        return []
    return [table_entry(graph, node) if node.op == "gather" else linear_weight(graph, node)]


def linear_weight(graph: Graph, node: Node) -> TensorQuant:
    """A linear's int8 weight entry, full int8's and weight-only's: symmetric per output
    channel, the scales rounded to float16 values (half_exact: a file may store them in 2
    bytes)."""
    scale = half_exact(weight_scales(graph.constants[node.inputs[1]]))
    return TensorQuant(
        tensor=node.inputs[1], dtype="int8", node=node.outputs[0], axis=0, scale=scale,
        zero_point=(0,) * len(scale), source="weight",
    )  # fmt: skip


def weight_only(graph: Graph, plan: QuantPlan) -> list[str]:
    """The outputs of the linears and gathers whose matrix `plan` stores int8 while their
    activations stay float (an int8 input, or output, makes a full-int8 kernel)."""
    out = []
    for n in graph.nodes:
        if n.op not in MATRIX or plan.weight(n.outputs[0]) is None:
            continue
        y = plan.activation(n.outputs[0])
        x = plan.activation(n.inputs[0]) if n.op == "linear" else None
        full = y is not None and y.dtype == "int8" and (n.op == "gather" or _int8(x))
        if not full:
            out.append(n.outputs[0])
    return out


def _int8(t: TensorQuant | None) -> bool:
    return t is not None and t.dtype == "int8"


def dequantized_graph(graph: Graph, plan: QuantPlan, nodes: Collection[str]) -> Graph:
    """The float graph with the matrices of `nodes` (linear / gather outputs) replaced by
    their int8 values times the scales: what weight-only int8 computes, for ranking them."""
    consts = dict(graph.constants)
    for n in graph.nodes:
        t = plan.weight(n.outputs[0]) if n.outputs[0] in nodes else None
        if t is not None:
            consts[t.tensor] = weight_only_matrix(graph.constants[t.tensor], t.scale)
    return dataclasses.replace(graph, constants=consts)


def rank_weights(graph: Graph, plan: QuantPlan, seqs: list, judged: Judged = None) -> list[str]:
    """The weight-only nodes of `plan`, most sensitive first: the float graph with only that
    node's matrix rounded, its worst error against float on `seqs` (state carried)."""
    ref = float_outputs(graph, seqs, judged)
    errs = []
    for name in weight_only(graph, plan):
        got = float_outputs(dequantized_graph(graph, plan, [name]), seqs, judged)
        errs.append((compare("weight", got, ref).worst_pct, name))
    return [name for _, name in sorted(errs, key=lambda e: -e[0])]
