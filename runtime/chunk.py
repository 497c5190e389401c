"""K-step chunks: the one-step Graph unrolled K times, the state in and out once.

`stream.run(xs)` feeds whole chunks of K steps to the chunk model and the rest step by step,
with the same numbers as stepping one by one: the chunk graph is the step graph's nodes
repeated (step j's tensors are named `{name}@{j}`; constants are shared), and its int8 plan
gives every copy the parameters of the tensor it copies (`chunk_plan`), so in int8 each step
of a chunk computes what a step computes. What changes is the cost: one interpreter call per
K steps instead of K (docs/time.md, "Chunks").

Files: `model.chunk.onnx`, `model.chunk.tflite` (and `.int8` / `.int8-dynamic` ones) listed in
the manifest's `files`, with `chunk` = K; the chunk graph is rebuilt from graph.json.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.backends import MODEL_FILE_KIND, open_backend
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import Graph, Node, TensorSpec
from rnnedge.runtime.manifest import MODEL_FORMATS, ModelFile
from rnnedge.runtime.quant.plan import QuantPlan, TensorQuant

MAX_CHUNK = 256


def chunk_file(fmt: str, precision: str) -> str:
    """The bundle file of the chunk model of format `fmt` ("onnx" | "tflite")."""
    middle = "" if precision == "float" else f".{precision}"
    return f"model.chunk{middle}.{fmt}"


def _at(name: str, j: int) -> str:
    return f"{name}@{j}"


def unroll(graph: Graph, k: int) -> Graph:
    """[xs (K, *step shape), *states] -> [each output (K, *output shape), *states after K]."""
    x = graph.inputs[0]
    xs = f"{x.name}.chunk"
    consts = set(graph.constants)
    state_out = {s.input: s.output for s in graph.states}
    nodes: list[Node] = []
    rows: dict[str, list[str]] = {t.name: [] for t in graph.data_outputs}
    current = {s.input: s.input for s in graph.states}  # each state's tensor before step j
    for j in range(k):
        name = {**current, x.name: _at(x.name, j)}
        nodes += [
            Node(op="slice", inputs=(xs,), outputs=(_at(f"{x.name}.slice", j),),
                 attrs={"axis": 0, "start": j, "end": j + 1, "step": 1}),
            Node(op="reshape", inputs=(_at(f"{x.name}.slice", j),), outputs=(_at(x.name, j),),
                 attrs={"shape": list(x.shape)}),
        ]  # fmt: skip
        for n in graph.nodes:
            for o in n.outputs:
                name[o] = _at(o, j)
            nodes.append(
                dataclasses.replace(
                    n,
                    inputs=tuple(i if i in consts else name[i] for i in n.inputs),
                    outputs=tuple(name[o] for o in n.outputs),
                )
            )
        for t in graph.data_outputs:
            row = _at(f"{t.name}.row", j)
            nodes.append(Node(op="reshape", inputs=(name[t.name],), outputs=(row,),
                              attrs={"shape": [1, *t.shape]}))  # fmt: skip
            rows[t.name].append(row)
        current = {s: name[o] for s, o in state_out.items()}
    for t in graph.data_outputs:
        nodes.append(Node(op="concat", inputs=tuple(rows[t.name]), outputs=(t.name,),
                          attrs={"axis": 0}))  # fmt: skip
    for s in graph.states:
        nodes.append(Node(op="reshape", inputs=(current[s.input],), outputs=(s.output,),
                          attrs={"shape": list(graph.spec(s.output).shape)}))  # fmt: skip
    unbatched = lambda t, shape: TensorSpec(name=t.name, shape=shape)  # noqa: E731
    return Graph(
        inputs=(
            TensorSpec(name=xs, shape=(k, *x.shape)),
            *(unbatched(graph.spec(s.input), graph.spec(s.input).shape) for s in graph.states),
        ),
        outputs=(
            *(unbatched(t, (k, *t.shape)) for t in graph.data_outputs),
            *(unbatched(graph.spec(s.output), graph.spec(s.output).shape) for s in graph.states),
        ),
        nodes=tuple(nodes),
        constants=graph.constants,
        states=graph.states,
    )


def chunk_plan(graph: Graph, plan: QuantPlan, k: int) -> QuantPlan:
    """The step plan for the unrolled graph: every copy of a tensor gets the tensor's entry
    (state inputs after step 0 are the previous step's state outputs, which share the
    state's one set of parameters); the chunk's input, output rows and final states get
    those of the step's input, outputs and states."""
    consts = set(graph.constants)
    states = {s.input for s in graph.states}
    x = graph.inputs[0].name
    renamed = lambda t, name, node: dataclasses.replace(t, tensor=name, node=node)  # noqa: E731
    out: list[TensorQuant] = []
    for t in plan.tensors:
        entry = plan.activation(t.tensor) if t.tensor in (x, *states) else None
        for j in range(k):
            node = _at(t.node, j) if t.node else ""
            if t.tensor in consts:
                out.append(renamed(t, t.tensor, node))
            elif t.tensor in states:
                if j == 0:
                    out.append(renamed(t, t.tensor, node))
            else:
                out.append(renamed(t, _at(t.tensor, j), node))
        if t.tensor == x and entry is not None:
            out += [renamed(entry, f"{x}.chunk", "")]
            out += [renamed(entry, _at(f"{x}.slice", j), "") for j in range(k)]
    for o in (*graph.data_outputs, *(graph.spec(s.output) for s in graph.states)):
        entry = plan.activation(o.name)
        if entry is not None:
            out += [renamed(entry, _at(f"{o.name}.row", j), "") for j in range(k)]
            out.append(renamed(entry, o.name, ""))
    return dataclasses.replace(plan, tensors=tuple(out))


class ChunkedRun:
    """Stream.run's chunk path: whole chunks through the chunk runner, the rest through the
    stream's own runner, the state handed over between the two."""

    def __init__(self, chunk_runner, steps: int) -> None:
        self.steps = steps
        self._chunk = chunk_runner

    def run(self, step_runner, xs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each data output stacked (T, ...), as T steps of `step_runner` would give."""
        k = self.steps
        whole = len(xs) // k * k
        pieces: list[list[np.ndarray]] = []
        if whole:
            self._chunk.set_state(step_runner.get_state())
            for i in range(0, whole, k):
                outs = self._chunk.step(xs[i : i + k])
                pieces.append(outs)
            step_runner.set_state(self._chunk.get_state())
        for x in xs[whole:]:
            pieces.append([o[None] for o in step_runner.step(x)])
        if not pieces:
            raise BackendError("internal: chunked run of no steps")
        return tuple(np.concatenate([p[i] for p in pieces]) for i in range(len(pieces[0])))


def chunked_run(bundle: Bundle, backend: str, precision: str) -> ChunkedRun | None:
    """The chunk path of a stream on `backend`, or None: no chunk models in the bundle, or
    numpy (whose chunk would be the same loop over steps)."""
    k = bundle.manifest.chunk
    fmt = MODEL_FILE_KIND.get(backend)
    if not k or fmt is None or chunk_file(fmt, precision) not in bundle.files:
        return None
    graph = unroll(bundle.graph, k)
    models = tuple(
        ModelFile(path=chunk_file(f, precision), backend=f, precision=precision)
        for f in MODEL_FORMATS
        if chunk_file(f, precision) in bundle.files
    )
    manifest = dataclasses.replace(
        bundle.manifest, inputs=graph.inputs, outputs=graph.outputs, models=models
    )
    sub = Bundle(path=bundle.path, manifest=manifest, graph=graph, files=bundle.files)
    return ChunkedRun(open_backend(sub, backend, precision).runner(), k)
