"""GraphBuilder: the one place where capture and lowering add tensors and nodes to a Graph."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnedge.errors import ExportError, GraphError, UnsupportedModelError
from rnnedge.runtime.graph import Graph, Node, StatePair, TensorSpec
from rnnedge.runtime.ops import OPS


@dataclass(frozen=True)
class Sym:
    """A float32 tensor computed at run time, by name (as opposed to a known constant)."""

    name: str


@dataclass
class GraphBuilder:
    nodes: list[Node] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)  # the non-float32 tensors (token ids)
    inputs: list[TensorSpec] = field(default_factory=list)
    states: list[tuple[str, str]] = field(default_factory=list)  # (state input, its init)
    state_outputs: dict[str, Sym] = field(default_factory=dict)  # state input -> next value
    source: str = ""  # module path of the ATen node being lowered, stamped on new nodes
    # streamed convs over time whose one output frame stands for the frames the model then
    # slices off (export/capture/conv_time.py): a slice of one of these is the tensor itself
    trimmed: set[str] = field(default_factory=set)
    _taken: set[str] = field(default_factory=set)
    _produced: set[str] = field(default_factory=set)
    _deps: dict[str, frozenset[str]] = field(default_factory=dict)  # tensor -> graph inputs used

    def fresh(self, hint: str) -> str:
        """A unique, deterministic tensor name derived from `hint`."""
        base = re.sub(r"[^A-Za-z0-9_.]", "_", hint) or "t"
        name, i = base, 1
        while name in self._taken:
            name, i = f"{base}_{i}", i + 1
        self._taken.add(name)
        return name

    def input(self, hint: str, shape: tuple[int, ...], dtype: str = "float32") -> Sym:
        name = self.fresh(hint)
        self.inputs.append(TensorSpec(name=name, shape=tuple(shape), dtype=dtype))
        self.shapes[name] = tuple(shape)
        if dtype != "float32":
            self.dtypes[name] = dtype
        self._deps[name] = frozenset([name])
        return Sym(name)

    def const(self, value: Any, hint: str = "const") -> Sym:
        arr = np.asarray(value, dtype=np.float32)
        name = self.fresh(hint)
        self.constants[name] = np.ascontiguousarray(arr)
        self.shapes[name] = arr.shape
        return Sym(name)

    def op(self, op: str, inputs: list[Sym], hint: str | None = None, **attrs: Any) -> Sym:
        """Appends one node; its output shape comes from running the numpy op on zeros."""
        for k, s in enumerate(inputs):
            if not isinstance(s, Sym):
                raise ExportError(f"internal: op {op!r} got a non-tensor input {s!r}")
            if self.dtype(s) != "float32" and (op, k) != ("gather", 1):
                where = f" in module {self.source}" if self.source else ""
                raise UnsupportedModelError(
                    f"op {op!r}{where} reads the integer ids {s.name!r}: ids may only be the "
                    "index of an Embedding, as they come in (reshape them in the example)"
                )
        zeros = [np.zeros(self.shapes[s.name], self.dtype(s)) for s in inputs]
        try:
            with np.errstate(all="ignore"):
                shape = OPS[op].fn(*zeros, **attrs).shape
        except (ValueError, TypeError, IndexError) as e:
            where = f" (from {self.source})" if self.source else ""
            raise ExportError(f"cannot build op {op!r}{where}: {e}") from e
        out = self.fresh(hint or op)
        self.shapes[out] = shape
        self._produced.add(out)
        self._deps[out] = frozenset().union(*(self._deps.get(s.name, frozenset()) for s in inputs))
        ins = tuple(s.name for s in inputs)
        self.nodes.append(Node(op=op, inputs=ins, outputs=(out,), attrs=attrs, source=self.source))
        return Sym(out)

    def producer(self, s: Sym) -> Node | None:
        """The node that computes `s`, None for an input or a constant."""
        return next((n for n in reversed(self.nodes) if s.name in n.outputs), None)

    def shape(self, s: Sym) -> tuple[int, ...]:
        return self.shapes[s.name]

    def dtype(self, s: Sym) -> str:
        return self.dtypes.get(s.name, "float32")

    def depends_on(self, s: Sym, input_name: str) -> bool:
        return input_name in self._deps.get(s.name, frozenset())

    def add_state(self, hint: str, init: np.ndarray) -> Sym:
        """A new graph input that is a recurrent state starting at `init`."""
        x = self.input(hint, init.shape)
        self.mark_state(x, init)
        return x

    def mark_state(self, x: Sym, init: np.ndarray) -> None:
        init_name = self.const(init, f"{x.name}.init").name
        self.states.append((x.name, init_name))

    def build(self, outputs: list[tuple[str, Sym]]) -> Graph:
        """Names the outputs, pairs states, drops dead nodes and constants, validates."""
        renames: dict[str, str] = {}
        extra: list[Node] = []
        specs: list[TensorSpec] = []

        def name_output(want: str, sym: Sym) -> str:
            want = self.fresh(want)
            shape = self.shapes[sym.name]
            if sym.name in self._produced and sym.name not in renames:
                renames[sym.name] = want
            else:
                # An input, a constant or a tensor that is already another output: copy it, as
                # a tensor has one name. A reshape to its own shape is a copy every backend has.
                src = renames.get(sym.name, sym.name)
                extra.append(
                    Node(op="reshape", inputs=(src,), outputs=(want,), attrs={"shape": list(shape)})
                )
            specs.append(TensorSpec(name=want, shape=shape))
            return want

        for want, sym in outputs:
            name_output(want, sym)
        states = [
            StatePair(
                input=inp, output=name_output(f"{inp}_out", self.state_outputs[inp]), init=init
            )
            for inp, init in self.states
        ]
        nodes = [_renamed(n, renames) for n in self.nodes] + extra
        nodes, constants = _prune(nodes, self.constants, [t.name for t in specs], states)
        try:
            return Graph(
                inputs=tuple(self.inputs),
                outputs=tuple(specs),
                nodes=tuple(nodes),
                constants=constants,
                states=tuple(states),
            )
        except GraphError as e:
            raise ExportError(f"captured graph is invalid: {e}") from e


def _renamed(n: Node, renames: dict[str, str]) -> Node:
    return Node(
        op=n.op,
        inputs=tuple(renames.get(i, i) for i in n.inputs),
        outputs=tuple(renames.get(o, o) for o in n.outputs),
        attrs=n.attrs,
        source=n.source,
    )


def _prune(nodes: list[Node], constants: dict, outputs: list[str], states: list[StatePair]):
    live = set(outputs) | {s.init for s in states}
    kept = []
    for n in reversed(nodes):
        if any(o in live for o in n.outputs):
            kept.append(n)
            live.update(n.inputs)
    kept.reverse()
    return kept, {k: v for k, v in constants.items() if k in live}
