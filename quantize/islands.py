"""Float islands for plan_int8 (int8.py): which linears cannot be int8, and where an island
that feeds an int8 linear ends.

An op with no int8 kernel (layer_norm, pow, exp, ...) runs as a float island: its inputs are
dequantized, the float op runs, and its output stays float. A linear reading that float
output used to run in float too, weights and all: a transformers RWKV-4 kept its LM head
(after ln_out) and every FFN value linear (after pow) float, so its int8 file was 49-65% of
the float one. Instead the island's output is quantized at its own calibrated range (the
island ends in QUANTIZE, which every backend already runs: Int8Executor._float) and the
linear reads int8, with int8 per-channel weights.

Only where that costs no other reader anything: every reader of the group is an op that runs
int8 (a linear or an elementwise int8 kernel), so no float op sees a rounded input; the
group is no state and no graph output; its calibrated range is finite and holds no infinity
stand-in. A linear writing a graph output qualifies too (an LM head after its final norm, the
largest matrix of a small LM): its output goes int8 at its calibrated range widened by
HEAD_HEADROOM (more than other outputs get); the export's int8-vs-float check measures how
many float values that grid clips (quantize/fidelity.py: clipped_pct) and the error, and mixed
precision keeps the island (and the head) float when the budget misses. Measured on the
trained RWKV and Mamba: docs/rwkv-mamba.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rnnedge.quantize.calibrate import SENTINEL
from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.quant.plan import SHAPE_OPS, Ranges

# the headroom of a graph output written by a linear that reads an island's end (the LM head):
# the output was float before islands ended there, so it gets more room than OUTPUT_HEADROOM
# (int8.py). Measured: the RWKV normaliser of tests/quantize/test_int8_mixed.py ran 13% of its
# range past calibration at one held-out step (6.9% of the range in error with 5% headroom)
HEAD_HEADROOM = 0.25


def islands_ending_at_linears(
    graph: Graph,
    groups: Mapping[str, str],
    soft: set[str],
    floats: set[str],
    int_ops: tuple[str, ...],
    ranges: Ranges,
) -> set[str]:
    """The roots among `soft` (float only because an op there has no int8 kernel) that a
    linear reads and that may be quantized where the island ends; `floats`: the roots that
    are float for any reason, `int_ops`: the ops with int8 kernels."""
    members: dict[str, set[str]] = {}
    for name, root in groups.items():
        members.setdefault(root, set()).add(name)
    fixed = {s.input for s in graph.states} | {s.output for s in graph.states}
    fixed |= {t.name for t in graph.outputs}
    out = set()
    for root in soft:
        group = members.get(root, set())
        readers = [
            n
            for n in graph.nodes
            if any(i in group for i in n.inputs)
            and not (n.op in SHAPE_OPS and n.outputs[0] in group)
        ]
        if group & fixed or not any(n.op == "linear" for n in readers):
            continue
        if not all(n.op in int_ops and groups[n.outputs[0]] not in floats for n in readers):
            continue
        if all(_calibrated(ranges, t) for t in group):
            out.add(root)
    return out


def island_heads(graph: Graph, producer: Mapping[str, Node], int_ops: tuple[str, ...]) -> set[str]:
    """The graph outputs written by a linear that reads an op with no int8 kernel (through
    shape ops): an island's end, where HEAD_HEADROOM applies."""
    outputs = {t.name for t in graph.outputs}
    out = set()
    for node in graph.nodes:
        if node.op != "linear" or node.outputs[0] not in outputs:
            continue
        x = producer.get(node.inputs[0])
        while x is not None and x.op in SHAPE_OPS:
            x = producer.get(x.inputs[0])
        if x is not None and x.op not in int_ops:
            out.add(node.outputs[0])
    return out


def _calibrated(ranges: Ranges, name: str) -> bool:
    r = ranges.ranges.get(name)
    return r is not None and bool(np.isfinite(r).all()) and max(abs(r[0]), abs(r[1])) < SENTINEL


def operand_reason(graph: Graph, node: Node) -> str:
    """Why an int8 linear / gather cannot hold this node's constant operands ("" if it can)."""
    if node.op == "linear":
        w = graph.constants.get(node.inputs[1])
        b = graph.constants.get(node.inputs[2]) if len(node.inputs) == 3 else None
        if w is None or w.ndim != 2 or not np.isfinite(w).all():
            return "op 'linear': its weight is not a finite constant [N, K] matrix"
        if len(node.inputs) == 3 and (b is None or b.shape != w.shape[:1]):
            # the int32 bias has one scale per output channel: it must be a [N] vector
            return "op 'linear': its bias is not a constant [N] vector (it broadcasts)"
    if node.op == "gather":
        t = graph.constants.get(node.inputs[0])
        if t is None or t.ndim != 2 or not np.isfinite(t).all():
            return "op 'gather': its table is not a finite constant [V, D] matrix"
    return ""
