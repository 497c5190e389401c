"""partition(graph) -> stages: the one-step Graph of a model with bidirectional layers, cut
into the stages of an offline program (docs/time.md, docs/format.md "stages").

The graph holds every direction of every bidirectional layer as a cell with its own state
pair; the reverse cells' states are named `*.reverse.h` / `.c` (capture/bidirectional.py).
A node belongs to a reverse cell when it reads a reverse state and leads to its next value,
or feeds only such nodes (the cell's input-side matmul). Stages alternate forward and
backward scans over the sequence: a node runs in the earliest stage of its direction that
comes after every stage it reads from. So one bidirectional layer with a head gives
[forward: the ops before it and its forward cell] [backward: its reverse cell]
[forward: the concatenation and the head]; each stacked layer adds a backward and a forward
stage.

Each stage is a Graph of its own with ONE data input: every tensor it reads from earlier
stages (or the model's input), flattened and concatenated in `inputs` order, so calibration,
int8 planning and both emitters treat it like any one-step model. The unpacking (slice +
reshape) is part of the stage graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnedge.errors import ExportError, UnsupportedModelError
from rnnedge.export.capture.bidirectional import H_N, REVERSE_STATE
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph, Node, TensorSpec

FORWARD, BACKWARD = "forward", "backward"


@dataclass(frozen=True)
class StagePlan:
    name: str  # "s0", "s1", ...: the prefix of the stage's files in the bundle
    direction: str  # FORWARD | BACKWARD: the order the stage steps through the sequence
    inputs: tuple[str, ...]  # program tensors packed, flattened and in this order, as its input
    graph: Graph  # one step: [packed input, *states] -> [*outputs, *next states]


def is_offline(graph: Graph) -> bool:
    """Whether the graph holds a reverse direction, so it can only run as an offline program."""
    return any(REVERSE_STATE.search(s.input) for s in graph.states)


def partition(graph: Graph) -> list[StagePlan]:
    for n in graph.nodes:
        if any(H_N in o for o in n.outputs):
            where = n.source or "a bidirectional layer"
            raise UnsupportedModelError(
                f"{where}: the model reads h_n (the final states) of a bidirectional layer, "
                "which an offline program does not compute per step; use the output sequence "
                "(e.g. out[:, -1] for the last step)"
            )
    backward = _reverse_nodes(graph)
    floor: dict[str, int] = {}
    for _ in range(2 * len(graph.states) + 1):
        # a cell's state-side ops read only the state, so they would land in the first stage
        # of their direction; start the state no earlier than the rest of its cell, until
        # every cell sits in one stage
        stage = _stage_of_nodes(graph, backward, floor)
        spans = _state_spans(graph, stage)
        moved = {s: max(k) for s, k in spans.items() if len(k) > 1 and floor.get(s) != max(k)}
        if not moved:
            break
        floor.update(moved)
    _check_states(graph, stage)
    shapes = infer_shapes(graph)
    used = sorted(set(stage))
    plans = []
    for k in used:
        nodes = [n for i, n in enumerate(graph.nodes) if stage[i] == k]
        name = f"s{used.index(k)}"
        plans.append(_stage(graph, name, FORWARD if k % 2 == 0 else BACKWARD, nodes, stage, shapes))
    return plans


def _reverse_nodes(graph: Graph) -> set[int]:
    cells: dict[str, list] = {}  # one reverse cell per prefix: its h (and c) state pairs
    for s in graph.states:
        m = REVERSE_STATE.search(s.input)
        if m:
            cells.setdefault(s.input[: m.start()], []).append(s)
    cell: set[int] = set()
    for pairs in cells.values():
        down: set[str] = {s.input for s in pairs}  # tensors that depend on the cell's state
        for n in graph.nodes:
            if any(i in down for i in n.inputs):
                down.update(n.outputs)
        up: set[str] = {s.output for s in pairs}  # tensors that lead to its next state
        for n in reversed(graph.nodes):
            if any(o in up for o in n.outputs):
                up.update(n.inputs)
        cell |= {i for i, n in enumerate(graph.nodes) if n.outputs[0] in down & up}
    readers: dict[str, set[int]] = {}
    for i, n in enumerate(graph.nodes):
        for t in n.inputs:
            readers.setdefault(t, set()).add(i)
    outputs = {t.name for t in graph.outputs}
    grown = True
    while grown:  # the cell's own input-side ops: nodes that feed only cell nodes
        grown = False
        for i, n in enumerate(graph.nodes):
            r = readers.get(n.outputs[0], set())
            if i not in cell and r and r <= cell and n.outputs[0] not in outputs:
                cell.add(i)
                grown = True
    return cell


def _stage_of_nodes(graph: Graph, backward: set[int], floor: dict[str, int]) -> list[int]:
    made: dict[str, int] = dict(floor)
    stage = []
    for i, n in enumerate(graph.nodes):
        parity = 1 if i in backward else 0
        lo = 0
        for t in n.inputs:
            if t in made:
                k = made[t]
                lo = max(lo, k if k % 2 == parity else k + 1)
        k = lo if lo % 2 == parity else lo + 1
        stage.append(k)
        made[n.outputs[0]] = k
    return stage


def _state_spans(graph: Graph, stage: list[int]) -> dict[str, set[int]]:
    """The stages each state's step touches: its readers and the node making its next value."""
    spans = {}
    for s in graph.states:
        where = {stage[i] for i, n in enumerate(graph.nodes) if s.input in n.inputs}
        spans[s.input] = where | {
            stage[i] for i, n in enumerate(graph.nodes) if s.output in n.outputs
        }
    return spans


def _check_states(graph: Graph, stage: list[int]) -> None:
    for s, where in _state_spans(graph, stage).items():
        if len(where) > 1:
            raise UnsupportedModelError(
                f"state {s!r}: its step spans a forward and a backward scan of the "
                "sequence (a recurrence that reads a bidirectional layer's reverse output "
                "inside its own step); this cannot run as an offline program"
            )


def _stage(
    graph: Graph, name: str, direction: str, nodes: list[Node], stage: list[int], shapes: dict
) -> StagePlan:
    mine = {o for n in nodes for o in n.outputs}
    states = [s for s in graph.states if any(s.input in n.inputs for n in nodes)]
    local = set(graph.constants) | mine | {s.input for s in states}
    inputs: list[str] = []
    for n in nodes:
        inputs += [t for t in n.inputs if t not in local and t not in inputs]
    later = {t for i, n in enumerate(graph.nodes) if n not in nodes for t in n.inputs}
    data_out = {t.name for t in graph.data_outputs}
    exported = [o for n in nodes for o in n.outputs if o in later or o in data_out]
    exported = [o for o in exported if o not in {s.output for s in states}] + [
        s.output for s in states
    ]
    packed = f"{name}.packed_input"
    if packed in shapes or not inputs:
        raise ExportError(f"internal: stage {name} has no input or its name {packed!r} is taken")
    unpack, offset = [], 0
    for t in inputs:
        size = math.prod(shapes[t])
        unpack += [
            Node(op="slice", inputs=(packed,), outputs=(f"{t}.{name}_packed",),
                 attrs={"axis": 1, "start": offset, "end": offset + size, "step": 1}),
            Node(op="reshape", inputs=(f"{t}.{name}_packed",), outputs=(t,),
                 attrs={"shape": list(shapes[t])}),
        ]  # fmt: skip
        offset += size
    body = [*unpack, *nodes]
    read = {t for n in body for t in n.inputs} | {s.init for s in states}
    spec = lambda t: TensorSpec(name=t, shape=tuple(shapes[t]))  # noqa: E731
    g = Graph(
        inputs=(TensorSpec(name=packed, shape=(1, offset)), *(spec(s.input) for s in states)),
        outputs=tuple(spec(t) for t in exported),
        nodes=tuple(body),
        constants={k: v for k, v in graph.constants.items() if k in read},
        states=tuple(states),
    )
    return StagePlan(name=name, direction=direction, inputs=tuple(inputs), graph=g)
