"""plan_int8(graph, ranges) -> QuantPlan: the full-integer int8 scheme, made once on the Graph.

Conventions are TFLite's (https://ai.google.dev/edge/litert/models/quantization_spec), so the
TFLite emitter can write them as they are:
  weights      int8, symmetric per output channel (axis 0), [-127, 127], zero point 0
  biases       int32, scale[n] = x_scale * w_scale[n], zero point 0
  activations  int8 per tensor, asymmetric: scale = (hi - lo) / 255 over a range that always
               holds 0, zero point = round(-128 - lo / scale); a graph output's range is
               first widened by OUTPUT_HEADROOM of its width on each side (see _headroom)
  fixed        sigmoid outputs 1/256 zp -128, tanh outputs 1/128 zp 0 (the LOGISTIC / TANH
               int8 output parameters the spec prescribes), except tanh of an LSTM cell
               (calibrated: it is a float island, see _reads_cell); with h="fixed",
               recurrent h states in [-1, 1] 1/128 zp 0
  LSTM cell c  int16, symmetric, power-of-two scale 2^ceil(log2 max|c|) / 2^15 (TFLite's 8x8_16
               LSTM keeps its cell state so, `cell="int16"`), or float (the default: as
               accurate, measured, and faster on LiteRT, whose XNNPACK has no int16 ops)
Tensors joined by reshape / slice / concat and a state's input and output form ONE group with
ONE set of parameters: TFLite's int8 RESHAPE, STRIDED_SLICE and CONCATENATION require equal
input and output parameters, and an int8 state is fed straight back into the next step.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np

from rnnedge.errors import InputError
from rnnedge.quantize import islands, weight_only
from rnnedge.quantize.bounds import Interval, bounded_states
from rnnedge.quantize.calibrate import SENTINEL
from rnnedge.quantize.int8_gather import table_entry
from rnnedge.quantize.stacked import StackSplit, stack_splits
from rnnedge.runtime.graph import INDEX_DTYPES, Graph, Node
from rnnedge.runtime.quant.plan import (
    FIXED_OUTPUTS,
    SHAPE_OPS,
    QParams,
    QuantPlan,
    Ranges,
    TensorQuant,
)

INT_OPS = ("linear", "gather", "add", "sub", "mul", "sigmoid", "tanh", "relu", *SHAPE_OPS)
CELLS = ("int16", "float")
HS = ("fixed", "calibrated")
OUTPUT_HEADROOM = 0.05
# op -> the operands at which it is infinite when 0: an int8 grid always holds 0 exactly (see
# asymmetric), so a positive tensor's smallest values round to 0 there, and log(mag + 1e-3)
# became -inf, then NaN in the next matmul (the realistic zoo's speech_enhancer; likewise an RMS
# norm's variance + eps, where 1/sqrt(0) = inf)
SINGULAR_AT_ZERO = {"log": (0,), "rsqrt": (0,), "div": (1,)}


def plan_int8(
    graph: Graph,
    ranges: Ranges,
    *,
    cell: str = "float",
    h: str = "calibrated",
    keep_float: Mapping[str, str] | None = None,
    float_weights: Collection[str] | None = (),
) -> QuantPlan:
    """`cell`: the LSTM cell state in "float" or "int16". `h`: a bounded state (GRU / LSTM h)
    at its calibrated range ("calibrated"; still one set for the state's input and output) or
    at the fixed 1/128 ("fixed"). An RNN-tanh h is a TANH output: 1/128 either way. The
    defaults are export's, each chosen by measurement (docs/int8.md). `keep_float`: tensor ->
    why, activations to leave float with everything tied to them (quantize/mixed.py).
    A float linear / gather keeps its matrix int8 unless `float_weights` (None: all) names it."""
    if cell not in CELLS:
        raise InputError(f"cell {cell!r} must be one of {CELLS}")
    if h not in HS:
        raise InputError(f"h {h!r} must be one of {HS}")
    producer = {n.outputs[0]: n for n in graph.nodes}
    splits = stack_splits(graph)
    groups = _groups(graph, splits)
    proven = bounded_states(graph)
    bounded = proven if h == "fixed" else set()
    cells = _cell_groups(graph, groups, producer, proven, splits)
    keep = {**{sp.concat: sp.why for sp in splits}, **(keep_float or {})}
    floats = _float_tensors(graph, groups, set().union(*cells.values()), keep, ranges)
    members: dict[str, list[str]] = {}
    for name, root in groups.items():
        members.setdefault(root, []).append(name)
    heads = islands.island_heads(graph, producer, INT_OPS)
    acts: dict[str, TensorQuant] = {}
    for names in members.values():
        for name in names:
            p = _act(name, names, graph, ranges, producer, floats, bounded, cells, cell)
            wide = name in heads and p.source == "calibrated" and p.dtype == "int8"
            acts[name] = _calibrated(name, names, ranges, islands.HEAD_HEADROOM) if wide else p
    tensors = [acts[n] for n in _activation_order(graph)]
    tensors += _constants(graph, producer, acts, float_weights)
    return QuantPlan(scheme="int8", tensors=tuple(tensors))


# --- groups and float tensors -------------------------------------------------------------


def _activation_order(graph: Graph) -> list[str]:
    return [t.name for t in graph.inputs] + [n.outputs[0] for n in graph.nodes]


def _groups(graph: Graph, splits: list[StackSplit]) -> dict[str, str]:
    """Union-find over activations: shape ops and state pairs join their tensors; a stacked
    state's slices join the parts written back, not the stack (quantize/stacked.py)."""
    parent = {n: n for n in _activation_order(graph)}
    apart = {sp.concat for sp in splits} | {a for sp in splits for a, _ in sp.pairs}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for node in graph.nodes:
        if node.op in SHAPE_OPS and node.outputs[0] not in apart:
            for i in node.inputs:
                if i in parent:
                    union(i, node.outputs[0])
    for s in graph.states:
        union(s.input, s.output)
    for a, b in (pair for sp in splits for pair in sp.pairs):
        union(a, b)
    return {n: find(n) for n in parent}


def activation_groups(graph: Graph) -> dict[str, str]:
    """tensor -> the root of its group: tensors that share one set of parameters (joined by
    reshape / slice / concat, or a state's input and output)."""
    return _groups(graph, stack_splits(graph))


def _float_tensors(
    graph: Graph, groups: dict[str, str], cell: set[str], keep: Mapping[str, str], ranges: Ranges
) -> dict:
    """root -> why, for groups that must stay float, each reason naming the op that produces
    the tensor; iterated because a linear that reads a tensor which is not int8 (a float
    group, or an LSTM-like cell kept float or int16) runs in float, so its output is float
    too (the int8 linear kernels and its int32 bias scale need an int8 input). A float
    island read by int8 ops only ends in QUANTIZE instead (quantize/islands.py)."""
    # group root -> (the tensor that is float, why); `keep` is mixed precision's choice
    why: dict[str, tuple[str, str]] = {groups[t]: (t, w) for t, w in keep.items() if t in groups}
    hard = set(why) | {groups[t] for t in cell if t in groups}  # never quantized at an island
    soft: set[str] = set()  # float only because an op there has no int8 kernel
    for node in graph.nodes:
        out = node.outputs[0]
        for i in SINGULAR_AT_ZERO.get(node.op, ()):
            t = node.inputs[i]
            if t in groups:
                reason = f"op {node.op!r} reads it: int8 rounds values near 0 to 0, where it is inf"
                why.setdefault(groups[t], (t, reason))
                hard.add(groups[t])
        if node.op not in INT_OPS:
            why[groups[out]] = (out, f"op {node.op!r} has no int8 kernel in this scheme")
            soft.add(groups[out])
        elif reason := islands.operand_reason(graph, node):
            why[groups[out]] = (out, reason)
    # no int8 scale holds a stand-in for -inf next to real values; this reason wins over an
    # op's (RWKV's max state comes from `maximum`), which would hide why it can never be int8
    for st in graph.states:
        if np.abs(graph.constants[st.init]).max(initial=0.0) >= SENTINEL:
            reason = f"state {st.input!r} starts at +-{SENTINEL:g} (a stand-in for infinity)"
            why[groups[st.input]] = (st.input, reason)
            hard.add(groups[st.input])
    for root in islands.islands_ending_at_linears(
        graph, groups, soft - hard, set(why), INT_OPS, ranges
    ):
        del why[root]
    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            out, x = node.outputs[0], node.inputs[0]
            if (
                node.op == "linear"
                and groups[out] not in why
                and (groups.get(x) in why or x in cell)
            ):
                reason = f"op 'linear' reads {x!r}, which is not int8 (float or int16)"
                why[groups[out]] = (out, reason)
                changed = True
    return why


# --- the LSTM cell state -------------------------------------------------------------------


def _cell_groups(
    graph: Graph,
    groups: dict[str, str],
    producer: dict[str, Node],
    bounded: set[str],
    splits: list[StackSplit],
) -> dict[str, set[str]]:
    """root of each cell-state group -> the tensors kept at its precision: the group and the
    products its update adds (c' = f c + i g keeps f c and i g at the cell's scale, so the
    integrating state never passes through an 8-bit rounding)."""
    out: dict[str, set[str]] = {}
    # a stacked state's slices are states of their own (the stack holds no cell itself)
    inputs = [s.input for s in graph.states] + [a for sp in splits for a, _ in sp.pairs]
    for state in inputs:
        root = groups[state]
        if state in bounded:
            continue
        group = {n for n, r in groups.items() if r == root}
        makers = [producer[n] for n in group if n in producer and producer[n].op not in SHAPE_OPS]
        products: set[str] = set()
        for node in makers:
            # s' = a s + b u (an LSTM cell, a Mamba state) or s' = a s + b (RWKV's den)
            muls = {
                i: producer[i] for i in node.inputs if i in producer and producer[i].op == "mul"
            }
            if node.op != "add" or not any(i in group for m in muls.values() for i in m.inputs):
                break
            products.update(muls)
        else:
            if makers:
                out[root] = group | products
    return out


# --- parameters ----------------------------------------------------------------------------


def _act(
    name: str,
    names: list[str],
    graph: Graph,
    ranges: Ranges,
    producer: dict[str, Node],
    floats: dict[str, tuple[str, str]],
    bounded: set[str],
    cells: dict[str, set[str]],
    cell: str,
) -> TensorQuant:
    if name in {t.name for t in graph.inputs if t.dtype in INDEX_DTYPES}:
        why = "token ids: integers that op 'gather' reads as they are"
        return TensorQuant(tensor=name, dtype="float32", source="calibrated", why=why)
    # the cell group's own tensors and the products its update adds share its parameters
    for members in cells.values():
        if name in members:
            return _cell(name, members, ranges, cell, _cell_kind(graph, producer, members))
    for n in names:
        if n in floats:
            src, why = floats[n]
            if src != name:  # a group-mate: its own op, then the tensor that made it float
                own = f"op {producer[name].op!r}" if name in producer else "graph input"
                why = f"{own} shares one set of parameters with {src!r}, which is float: {why}"
            return TensorQuant(tensor=name, dtype="float32", source="calibrated", why=why)
    if any(n in bounded for n in names):  # h in [-1, 1]: the grid of tanh's output
        return _fixed(name, FIXED_OUTPUTS["tanh"])
    ops = {producer[n].op for n in names if n in producer and producer[n].op not in SHAPE_OPS}
    if ops == {"sigmoid"}:
        return _fixed(name, FIXED_OUTPUTS["sigmoid"])
    if ops == {"tanh"} and not _reads_cell(names, producer, cells):
        return _fixed(name, FIXED_OUTPUTS["tanh"])
    pad = OUTPUT_HEADROOM if any(t.name in names for t in graph.outputs) else 0.0
    return _calibrated(name, names, ranges, pad)


def _calibrated(name: str, names: list[str], ranges: Ranges, pad: float) -> TensorQuant:
    scale, zp = asymmetric(*_headroom(*_union(names, ranges), pad))
    return TensorQuant(
        tensor=name, dtype="int8", scale=(scale,), zero_point=(zp,), source="calibrated"
    )


def _headroom(lo: float, hi: float, pad: float = OUTPUT_HEADROOM) -> Interval:
    """A graph output clipped at the calibrated range is an error the user sees as it is, with
    no later op to squash it: held-out data routinely runs a few percent past the range seen in
    calibration (GRU 256x1: the clipped output was 3.2% of its range in error, 1.3% with 5%
    headroom; the worst of 18 GRU/LSTM/RNN models went from 3.2% to 2.6%). 10% more width on
    an output costs 10% of its resolution."""
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


def _reads_cell(names: list[str], producer: dict[str, Node], cells: dict[str, set[str]]) -> bool:
    """tanh(c) of an LSTM cell: no int8 TANH kernel reads the int16 (or float) cell, so it
    runs as a float island and may take calibrated parameters. It must: a layer whose h
    stays small has small tanh(c), and the fixed 1/128 grid gives it few levels (measured,
    LSTM 128x2: 2.8% of the output range with fixed, 1.9% calibrated; 256x2: 3.5%, 2.2%)."""
    in_cell = set().union(*cells.values()) if cells else set()
    return any(
        producer[n].inputs[0] in in_cell
        for n in names
        if n in producer and producer[n].op == "tanh"
    )


def _cell_kind(graph: Graph, producer: dict[str, Node], members: set[str]) -> str:
    """What a cell-state group is, for the plan's reasons: an LSTM cell (its update's products
    read sigmoid gates, c' = f c + i g) or another accumulator of the same shape (an RWKV
    aa' = e^-w aa + e^k v has no gates: calling it an LSTM cell misleads the reader)."""

    def gate(t: str) -> bool:
        while t in producer and producer[t].op in SHAPE_OPS:
            t = producer[t].inputs[0]
        return t in producer and producer[t].op == "sigmoid"

    products = [producer[m] for m in members if m in producer and producer[m].op == "mul"]
    if any(gate(i) for node in products for i in node.inputs):
        return "LSTM cell state"
    states = ", ".join(repr(s.input) for s in graph.states if s.input in members)
    return f"accumulator state {states} (s' = a s + b u, an LSTM cell's update without gates)"


def _cell(name: str, members: set[str], ranges: Ranges, cell: str, kind: str) -> TensorQuant:
    if cell == "float":
        why = f"{kind} kept float: as accurate as int16, and LiteRT's XNNPACK has no int16"
        return TensorQuant(tensor=name, dtype="float32", source="calibrated", why=why)
    lo, hi = _union(sorted(members), ranges)
    return TensorQuant(
        tensor=name, dtype="int16", scale=(pow2_scale(max(-lo, hi)),), zero_point=(0,),
        source="calibrated",
    )  # fmt: skip


def _fixed(name: str, p: QParams) -> TensorQuant:
    return TensorQuant(
        tensor=name, dtype=p.dtype, scale=(p.scale,), zero_point=(p.zp,), source="fixed"
    )


def _union(names: list[str], ranges: Ranges) -> tuple[float, float]:
    missing = [n for n in names if n not in ranges.ranges]
    if missing:
        raise InputError(f"calibration has no range for tensor(s) {missing}")
    lo = min(ranges.ranges[n][0] for n in names)
    hi = max(ranges.ranges[n][1] for n in names)
    return lo, hi


def asymmetric(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point for [lo, hi] widened to hold 0 (0 must be exact: zero padding
    and zero states), as TFLite's converter does."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi == lo:
        return 1.0, 0  # an all-zero tensor: any scale is exact
    scale = float(np.float32((hi - lo) / 255))
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


def pow2_scale(peak: float) -> float:
    """int16 symmetric scale 2^ceil(log2 peak) / 2^15: the cell's integer bits, as TFLite's
    integer LSTM (its cell_scale is a power of two so the cell update is pure shifts)."""
    if not peak > 0:
        return 2.0**-15
    return 2.0 ** (math.ceil(math.log2(peak)) - 15)


# --- weights, biases and other constants ---------------------------------------------------


def _constants(
    graph: Graph, producer: dict[str, Node], acts: dict[str, TensorQuant], float_weights
) -> list[TensorQuant]:
    out: list[TensorQuant] = []
    for node in graph.nodes:
        dest = acts[node.outputs[0]]
        if dest.dtype == "float32":  # nothing integer, but a matrix may be (weight-only)
            out += weight_only.entries(graph, node, float_weights)
            continue
        if node.op in ("linear", "gather"):
            linear = node.op == "linear"
            out += (
                _linear(graph, node, acts[node.inputs[0]]) if linear else [table_entry(graph, node)]
            )
            continue
        for i in (i for i in node.inputs if i in graph.constants and node.op in INT_OPS):
            scale, zp = asymmetric(float(graph.constants[i].min()), float(graph.constants[i].max()))
            out.append(
                TensorQuant(tensor=i, dtype="int8", node=node.outputs[0], scale=(scale,),
                            zero_point=(zp,), source="constant")
            )  # fmt: skip
    return out


def _linear(graph: Graph, node: Node, x: TensorQuant) -> list[TensorQuant]:
    out = [weight_only.linear_weight(graph, node)]  # scales float16 values: 2 bytes in a file
    w_scale = out[0].scale
    if len(node.inputs) == 3:
        # TFLite: bias scale = input scale * filter scale (float32 product), zero point 0
        xs = np.float32(x.scale[0])
        b_scale = tuple(float(xs * np.float32(s)) for s in w_scale)
        out.append(
            TensorQuant(
                tensor=node.inputs[2], dtype="int32", node=node.outputs[0], axis=0,
                scale=b_scale, zero_point=(0,) * len(b_scale), source="bias",
            )
        )  # fmt: skip
    return out
