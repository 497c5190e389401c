"""The tensors that one per-tensor int8 scale serves badly, found from the graph's structure
(quantize/mixed.py tries them first when int8 misses its budget):

  stacked states  a state tensor that stacks several states (an LSTM's h and c in one tensor,
                  as streaming VADs do) gets one scale for all of them: h in [-1, 1] next to
                  a c of range 10 gets ~25 levels. A stack of different states whose
                  every reader slices one part is planned slice by slice (quantize/stacked.py)
                  and never reaches this rule; any other such stack stays float.
  accumulators    a state carried from step to step by elementwise ops only (+, *, max:
                  an LSTM cell, an RWKV-style aa/bb/pp normaliser) integrates each step's
                  int8 rounding: the error grows along the stream. The state, the tensors
                  on its path and the decays that multiply it stay float.
Neither: states proven to stay in [-1, 1] (GRU h: a convex mix of tanh and itself), and shift
registers, a state whose next value is only a slice / concat of itself and fresh inputs (a
Mamba conv state, cat(state[..., 1:], x)): its values are rounded once on entry and only
move, in the one group of parameters of what enters it (measured on a trained Mamba:
docs/rwkv-mamba.md).
"""

from __future__ import annotations

from rnnedge.quantize.int8 import bounded_states
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.quant.plan import SHAPE_OPS, QuantPlan, Ranges

STACK_RATIO = 4.0  # stacked parts whose ranges differ more than this share a scale badly
ELEMENTWISE = ("add", "sub", "mul", "div", "maximum", "minimum", "neg", "exp", "log", "abs")
DECAYS = ("mul", "div")


def structural_floats(graph: Graph, ranges: Ranges, plan: QuantPlan) -> dict[str, str]:
    """tensor -> why, for the stacked states and accumulators of `graph` that `plan` stores
    as integers (an LSTM cell the plan already keeps float needs nothing more)."""
    bounded = bounded_states(graph)
    out: dict[str, str] = {}
    for s in graph.states:
        p = plan.activation(s.input)
        if s.input in bounded or p is None or p.dtype == "float32":
            continue
        if shift_register(graph, s.input, s.output):
            continue
        why = _stacked(graph, s.output, ranges)
        if why:
            out.setdefault(s.input, why)
        for tensor, why in _accumulator(graph, s.input, s.output).items():
            out.setdefault(tensor, why)
    return out


def shift_register(graph: Graph, state_in: str, state_out: str) -> bool:
    """Whether the state's next value is made of itself by shape ops only (slice, concat,
    reshape, transpose) plus fresh inputs: every op on a path from the state's input to its
    output is a shape op, so no value of the state is computed again, only moved."""
    forward = {state_in}
    on_path = []
    for node in graph.nodes:
        if any(i in forward for i in node.inputs):
            forward.add(node.outputs[0])
            on_path.append(node)
    if state_out not in forward:
        return False
    backward = {state_out}
    for node in reversed(on_path):
        if node.outputs[0] in backward:
            if node.op not in SHAPE_OPS:
                return False
            backward.update(node.inputs)
    return True


def _stacked(graph: Graph, output: str, ranges: Ranges) -> str:
    """Why the state made by concatenating parts of very different ranges (or "")."""
    producer = {n.outputs[0]: n for n in graph.nodes}
    node = producer.get(output)
    while node is not None and node.op in ("reshape",):
        node = producer.get(node.inputs[0])
    if node is None or node.op != "concat" or len(node.inputs) < 2:
        return ""
    widths = []
    for i in node.inputs:
        lo, hi = ranges.ranges.get(i, (0.0, 0.0))
        widths.append(max(hi, 0.0) - min(lo, 0.0))
    if min(widths) <= 0 or max(widths) / min(widths) <= STACK_RATIO:
        return ""
    ratio = max(widths) / min(widths)
    return (
        f"state stacks {len(widths)} tensors whose ranges differ {ratio:.0f}x on one int8 "
        f"scale (the narrowest would get ~{255 / ratio:.0f} levels; no per-slice scales)"
    )


def _accumulator(graph: Graph, state_in: str, state_out: str) -> dict[str, str]:
    """The tensors on an elementwise path from the state's input to its output, and the
    decays multiplying them; empty when the state passes a matmul or a squashing op."""
    ops = (*ELEMENTWISE, *SHAPE_OPS)
    forward = {state_in}
    for node in graph.nodes:
        if node.op in ops and any(i in forward for i in node.inputs):
            forward.add(node.outputs[0])
    if state_out not in forward:
        return {}
    backward = {state_out}
    for node in reversed(graph.nodes):
        if node.outputs[0] in backward and node.op in ops:
            backward.update(i for i in node.inputs if i not in graph.constants)
    path = forward & backward
    why = (
        f"accumulator: state {state_in!r} is carried elementwise from step to step, so one "
        "int8 rounding a step would pile up along the stream"
    )
    out = dict.fromkeys(sorted(path), why)
    for node in graph.nodes:
        if node.op in DECAYS and node.outputs[0] in path:
            for i in node.inputs:
                if i not in path and i not in graph.constants:
                    out.setdefault(i, f"decay multiplying the accumulator {state_in!r}")
    return out
