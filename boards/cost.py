"""A cost model of one step, from the Graph: MACs, bytes of weights and activations per
precision, and per board an ESTIMATED latency floor (compute- or memory-bound).

The floor is a lower bound for the interpreter's own work, not a prediction of what Python
sees: it ignores call overhead, elementwise ops and cache misses on activations. Its inputs
(MACs per cycle, DRAM bandwidth) come from the board profile, with their kinds; see
docs/boards.md for which are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnedge.boards.profiles import BoardProfile
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph

MATMUL_OPS = ("linear", "conv1d")
# element sizes in bytes per precision: (matmul weights, other constants, activations, state).
# int8 follows the bundle's scheme: int8 weights with a float scale per output channel, int32
# biases; "int8-dynamic" keeps float activations and quantizes them on the fly.
ELEMENT_BYTES = {
    "float": (4, 4, 4, 4),
    "int8": (1, 4, 1, 1),
    "int8-dynamic": (1, 4, 4, 4),
}


@dataclass(frozen=True, kw_only=True)
class GraphCost:
    macs: int  # multiply-accumulates per step in linear and conv1d
    other_elements: int  # output elements of every other op per step
    weight_params: int  # elements of matmul weight matrices
    weight_rows: int  # output channels of those matrices (one int8 scale each)
    other_params: int  # biases, norm scales and other constants read per step
    activation_elements: int  # step inputs plus every tensor a step produces
    state_elements: int


@dataclass(frozen=True, kw_only=True)
class StepBytes:
    precision: str
    weights: int
    activations: int
    state: int


@dataclass(frozen=True, kw_only=True)
class Floor:
    """An ESTIMATE of the fastest one step can run on one core of a board."""

    board: str
    precision: str
    weight_bytes: int
    resident_in: str  # "L1", "L2", "L3" or "DRAM": where the weights stay between steps
    compute_us: float
    memory_us: float  # 0 unless the weights must stream from DRAM every step
    floor_us: float
    bound: str  # "compute" or "memory"


def graph_cost(graph: Graph) -> GraphCost:
    shapes = infer_shapes(graph)
    macs = other = 0
    matmul_weights: set[str] = set()
    for node in graph.nodes:
        out = math.prod(shapes[node.outputs[0]])
        if node.op in MATMUL_OPS:
            # linear: y[..., N] = x[..., K] w[N, K]^T, one MAC per output element per k;
            # conv1d: w [O, C/groups, K], one MAC per output element per (c, k) in its group
            macs += out * math.prod(shapes[node.inputs[1]][1:])
            if node.inputs[1] in graph.constants:
                matmul_weights.add(node.inputs[1])
        else:
            other += out
    # constants a step reads; state initial values are not read by a step
    read = {i for n in graph.nodes for i in n.inputs if i in graph.constants}
    produced = sum(math.prod(shapes[n.outputs[0]]) for n in graph.nodes)
    return GraphCost(
        macs=macs,
        other_elements=other,
        weight_params=sum(int(graph.constants[n].size) for n in matmul_weights),
        weight_rows=sum(int(graph.constants[n].shape[0]) for n in matmul_weights),
        other_params=sum(int(graph.constants[n].size) for n in read - matmul_weights),
        activation_elements=produced + sum(math.prod(t.shape) for t in graph.inputs),
        state_elements=sum(math.prod(shapes[s.input]) for s in graph.states),
    )


def step_bytes(cost: GraphCost, precision: str) -> StepBytes:
    w, c, a, s = ELEMENT_BYTES[precision]
    scales = 4 * cost.weight_rows if w == 1 else 0
    return StepBytes(
        precision=precision,
        weights=cost.weight_params * w + scales + cost.other_params * c,
        activations=cost.activation_elements * a,
        state=cost.state_elements * s,
    )


def board_floor(cost: GraphCost, profile: BoardProfile, precision: str) -> Floor:
    nbytes = step_bytes(cost, precision).weights
    per_cycle = profile.value(
        "int8_macs_per_cycle" if "int8" in precision else "fp32_macs_per_cycle"
    )
    compute = cost.macs / (per_cycle * profile.value("clock_ghz") * 1e3)  # cycles per us
    kib = nbytes / 1024
    if kib <= profile.value("l1d_kib"):
        where = "L1"
    elif kib <= profile.value("l2_kib"):
        where = "L2"
    elif kib <= profile.value("l3_kib"):
        where = "L3"
    else:
        where = "DRAM"
    # Weights resident in a cache are assumed to keep up with the MAC units (as the floors in
    # measurements.md assume); out of cache, every step streams them all from DRAM.
    memory = nbytes / (profile.value("dram_bandwidth_gbs") * 1e3) if where == "DRAM" else 0.0
    return Floor(
        board=profile.name,
        precision=precision,
        weight_bytes=nbytes,
        resident_in=where,
        compute_us=compute,
        memory_us=memory,
        floor_us=max(compute, memory),
        bound="memory" if memory > compute else "compute",
    )


def board_report(bundle: Bundle, profile: BoardProfile) -> str:
    """The cost model of a bundle's step on one board, for `rnnedge inspect --board`."""
    cost = graph_cost(bundle.graph)
    have = {m.precision for m in bundle.manifest.models}
    figs = profile.figures
    lines = [
        f"cost model on {profile.title} -- an ESTIMATE from the Graph and the board profile, "
        "not a measurement:",
        f"  per step: {cost.macs:,} MACs (linear, conv1d), {cost.other_elements:,} elements "
        f"out of other ops, {cost.weight_params + cost.other_params:,} parameters",
        f"  board: {profile.core_type} at {profile.value('clock_ghz'):g} GHz "
        f"({figs['clock_ghz'].kind}); fp32 {profile.value('fp32_macs_per_cycle'):g} / int8 "
        f"{profile.value('int8_macs_per_cycle'):g} MACs per cycle "
        f"({figs['fp32_macs_per_cycle'].kind}); L2 {profile.value('l2_kib'):g} KiB "
        f"{profile.l2_scope}; DRAM {profile.value('dram_bandwidth_gbs'):g} GB/s "
        f"({figs['dram_bandwidth_gbs'].kind})",
        "  {:14s} {:>11s} {:>11s} {:>9s} {:>8s} {:>10s} {:>10s} {:>10s}  {}".format(
            "precision",
            "weights",
            "activations",
            "state",
            "fits in",
            "compute",
            "memory",
            "floor",
            "bound",
        ),
    ]
    for precision in ELEMENT_BYTES:
        b = step_bytes(cost, precision)
        f = board_floor(cost, profile, precision)
        mark = "" if precision in have else " *"
        lines.append(
            f"  {precision + mark:14s} {_kib(b.weights):>11s} {_kib(b.activations):>11s} "
            f"{_kib(b.state):>9s} {f.resident_in:>8s} {f.compute_us:8.2f}us "
            f"{f.memory_us:8.2f}us {f.floor_us:8.2f}us  {f.bound}"
        )
    if not have.issuperset(ELEMENT_BYTES):
        lines.append("  * not in this bundle: what quantizing would give")
    lines.append(
        f"  target p50 from Python on this board: {profile.value('target_p50_us'):g} us "
        f"({figs['target_p50_us'].kind}; {figs['target_p50_us'].source})"
    )
    return "\n".join(lines)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"
