"""Stacked states planned slice by slice (issue 16): a state that stacks several states in one
tensor (an LSTM's h and c, as streaming VADs carry them: `state[0]`, `state[1]` in,
`torch.stack([h, c])` out) would get ONE int8 scale for all of them, h in [-1, 1] next to a
c of range 10 getting ~25 levels; kept float, its h made the LSTM's weights float too.

Instead each slice is its own group: the slice the step reads (`state[i]`) and the part it
writes back (`h`) share one set of parameters, so the integers a step produces are the
integers the next step reads (dequantize -> float stack -> float slice -> quantize at the
same parameters is exact). Only the stack itself, the state tensor at the file boundary,
stays float: a float CONCATENATION / STRIDED_SLICE at the state, which every backend runs
as it runs any float island.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph, Node


@dataclass(frozen=True)
class StackSplit:
    state: str  # the state input
    concat: str  # the concat output that the state output reshapes
    pairs: tuple[tuple[str, str], ...]  # (slice of the state input, the part written back)

    @property
    def why(self) -> str:
        return (
            f"stacked state: its {len(self.pairs)} slices each have their own int8 parameters; "
            "the stack itself is float"
        )


def stack_splits(graph: Graph) -> list[StackSplit]:
    """The stacked states of `graph` whose every reader is a slice of exactly one part."""
    shapes = infer_shapes(graph)
    producer = {n.outputs[0]: n for n in graph.nodes}
    out = []
    for s in graph.states:
        node = producer.get(s.output)
        while node is not None and node.op == "reshape":
            node = producer.get(node.inputs[0])
        if node is None or node.op != "concat" or len(node.inputs) < 2:
            continue
        split = _split(graph, shapes, node, s.input, tuple(shapes[s.output]))
        if split is not None:
            out.append(split)
    return out


def _split(
    graph: Graph, shapes: dict, concat: Node, state: str, state_shape: tuple[int, ...]
) -> StackSplit | None:
    cat_shape = tuple(shapes[concat.outputs[0]])
    axis = concat.attrs["axis"] % len(cat_shape)
    # the reshape back to the state keeps the axes up to the stacking one: slice i of the
    # state along that axis is part i of the concat
    if state_shape[: axis + 1] != cat_shape[: axis + 1] or tuple(shapes[state]) != state_shape:
        return None
    # a stack of one state over layers (nn.LSTM's h of layer 0 and 1) is one kind of tensor,
    # planned as one; a stack of different states (h from a mul, c from an add) is split
    producer = {n.outputs[0]: n.op for n in graph.nodes}
    if len({producer.get(p) for p in concat.inputs}) < 2:
        return None
    spans, start = {}, 0
    for part in concat.inputs:
        if part in graph.constants or part == state:
            return None
        width = shapes[part][axis]
        spans[(start, start + width)] = part
        start += width
    pairs = []
    for node in graph.nodes:
        if state not in node.inputs:
            continue
        if node.op != "slice" or node.attrs.get("step", 1) != 1:
            return None
        if node.attrs["axis"] % len(state_shape) != axis:
            return None
        end = min(node.attrs["end"], state_shape[axis])
        part = spans.get((node.attrs["start"] % max(state_shape[axis], 1), end))
        if part is None:
            return None
        pairs.append((node.outputs[0], part))
    if not pairs:
        return None
    return StackSplit(state=state, concat=concat.outputs[0], pairs=tuple(pairs))
