"""Which state inputs provably stay in [-1, 1] (GRU/RNN h, LSTM h): an induction over steps on
the ops' output intervals, so their int8 scale can be fixed at 1/127 instead of calibrated."""

from __future__ import annotations

import numpy as np

from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.quant.plan import SHAPE_OPS

Interval = tuple[float, float]


def bounded_states(graph: Graph) -> set[str]:
    """State inputs proven to stay in [-1, 1]: assume it of every state, derive each state
    output's bound from the ops, drop the states whose output is not inside [-1, 1] (or whose
    initial value is not), and repeat until nothing changes (an induction over steps)."""
    hyp = {
        s.input
        for s in graph.states
        if np.all(np.abs(graph.constants[s.init]) <= 1)  # the induction's base case
    }
    while True:
        b = _bounds(graph, hyp)
        ok = {s.input for s in graph.states if s.input in hyp and _inside(b.get(s.output))}
        if ok == hyp:
            return ok
        hyp = ok


def _inside(iv: Interval | None) -> bool:
    return iv is not None and iv[0] >= -1 and iv[1] <= 1


def _bounds(graph: Graph, states: set[str]) -> dict[str, Interval]:
    b: dict[str, Interval] = {s: (-1.0, 1.0) for s in states}
    producer: dict[str, Node] = {}
    for node in graph.nodes:
        out = node.outputs[0]
        producer[out] = node
        ins = [b.get(i) for i in node.inputs]
        if node.op == "sigmoid":
            b[out] = (0.0, 1.0)
        elif node.op == "tanh":
            b[out] = (-1.0, 1.0)
        elif node.op in SHAPE_OPS and all(ins):
            b[out] = (min(i[0] for i in ins), max(i[1] for i in ins))
        elif node.op == "mul" and all(ins):
            p = [x * y for x in ins[0] for y in ins[1]]
            b[out] = (min(p), max(p))
        elif node.op == "add":
            iv = _convex(node, b, producer)
            if iv is not None:
                b[out] = iv
    return b


def _convex(add: Node, b: dict[str, Interval], producer: dict[str, Node]) -> Interval | None:
    """add(a, mul(z, sub(s, a))) with z in [0, 1] is a + z (s - a), between a and s: GRU's
    h' = n + z (h - n). Its bound is the hull of a's and s's."""
    for a, m in (add.inputs, add.inputs[::-1]):
        mul = producer.get(m)
        if mul is None or mul.op != "mul":
            continue
        for z, d in (mul.inputs, mul.inputs[::-1]):
            sub = producer.get(d)
            zb = b.get(z)
            if sub is None or sub.op != "sub" or sub.inputs[1] != a or zb is None:
                continue
            sb, ab = b.get(sub.inputs[0]), b.get(a)
            if zb[0] >= 0 and zb[1] <= 1 and sb and ab:
                return (min(sb[0], ab[0]), max(sb[1], ab[1]))
    return None
