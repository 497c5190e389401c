"""The Graph: rnnedge's IR of ONE time step of a recurrent model.

A Graph is a list of nodes in execution order over named float32 tensors. Every recurrent
state is an explicit input/output pair (`StatePair`); its initial value is a constant. The
meaning of every op is the numpy code in `ops.py`; docs/ops.md lists them.

Graphs are stored as `graph.json` (structure) plus `weights.npz` (constants), never pickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnedge.errors import GraphError
from rnnedge.runtime.ops import OPS

GRAPH_FORMAT = "rnnedge.graph"
GRAPH_VERSION = 1
MAX_RANK = 8
MAX_ELEMENTS = 1 << 28  # 256 M floats (1 GiB): a shape beyond this is refused, not allocated
# Tensor dtypes: float32 everywhere, except a data input of token ids (int32 or int64) that
# only the index operand of `gather` may read (see _check_ids)
DTYPES = ("float32", "int32", "int64")
INDEX_DTYPES = ("int32", "int64")


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # of ONE stream (the export example's batch)
    dtype: str = "float32"
    # The axis along which n streams are stacked into one batched call, or None when the
    # graph cannot batch streams (see export/capture/batching.py). Absent in JSON when None.
    batch_axis: int | None = None

    def __post_init__(self) -> None:
        check_shape(self.shape, what=f"tensor {self.name!r}")
        if self.dtype not in DTYPES:
            raise GraphError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")
        if self.batch_axis is not None and not (
            isinstance(self.batch_axis, int) and 0 <= self.batch_axis < len(self.shape)
        ):
            raise GraphError(f"tensor {self.name!r}: batch_axis {self.batch_axis!r} out of range")

    def to_json(self) -> dict[str, Any]:
        d = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.batch_axis is not None:
            d["batch_axis"] = self.batch_axis
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TensorSpec:
        axis = d.get("batch_axis") if isinstance(d, Mapping) else None
        return cls(
            name=_str(d, "name"), shape=_shape(d, "shape"), dtype=_str(d, "dtype"), batch_axis=axis
        )


@dataclass(frozen=True, kw_only=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # where in the user's model this came from (module path), for errors

    def to_json(self) -> dict[str, Any]:
        d = {"op": self.op, "inputs": list(self.inputs), "outputs": list(self.outputs)}
        d["attrs"] = dict(sorted(self.attrs.items()))
        if self.source:
            d["source"] = self.source
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Node:
        if not isinstance(d, Mapping):
            raise GraphError(f"each node must be an object, got {type(d).__name__}")
        attrs = d.get("attrs", {})
        if not isinstance(attrs, dict):
            raise GraphError(f"node attrs must be an object, got {type(attrs).__name__}")
        return cls(
            op=_str(d, "op"),
            inputs=_names(d, "inputs"),
            outputs=_names(d, "outputs"),
            attrs=attrs,
            source=str(d.get("source", "")),
        )


@dataclass(frozen=True, kw_only=True)
class StatePair:
    """A recurrent state: fed in as `input`, produced as `output`, starts at constant `init`."""

    input: str
    output: str
    init: str

    def to_json(self) -> dict[str, str]:
        return {"input": self.input, "output": self.output, "init": self.init}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StatePair:
        return cls(input=_str(d, "input"), output=_str(d, "output"), init=_str(d, "init"))


@dataclass(frozen=True, kw_only=True)
class Graph:
    inputs: tuple[TensorSpec, ...]  # data inputs first, then state inputs
    outputs: tuple[TensorSpec, ...]  # data outputs first, then state outputs
    nodes: tuple[Node, ...]
    constants: Mapping[str, np.ndarray]
    states: tuple[StatePair, ...] = ()

    def __post_init__(self) -> None:
        _check_structure(self)

    @property
    def state_inputs(self) -> tuple[str, ...]:
        return tuple(s.input for s in self.states)

    @property
    def data_inputs(self) -> tuple[TensorSpec, ...]:
        stateful = set(self.state_inputs)
        return tuple(t for t in self.inputs if t.name not in stateful)

    @property
    def data_outputs(self) -> tuple[TensorSpec, ...]:
        stateful = {s.output for s in self.states}
        return tuple(t for t in self.outputs if t.name not in stateful)

    def spec(self, name: str) -> TensorSpec:
        for t in (*self.inputs, *self.outputs):
            if t.name == name:
                return t
        raise GraphError(f"no graph input or output named {name!r}")

    def initial_state(self) -> dict[str, np.ndarray]:
        return {s.input: self.constants[s.init].copy() for s in self.states}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": GRAPH_FORMAT,
            "version": GRAPH_VERSION,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "states": [s.to_json() for s in self.states],
            "nodes": [n.to_json() for n in self.nodes],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], constants: Mapping[str, np.ndarray]) -> Graph:
        if not isinstance(d, dict) or d.get("format") != GRAPH_FORMAT:
            raise GraphError(f"not an rnnedge graph (format must be {GRAPH_FORMAT!r})")
        if d.get("version") != GRAPH_VERSION:
            raise GraphError(f"graph version {d.get('version')!r} unsupported (want 1)")
        return cls(
            inputs=tuple(TensorSpec.from_json(t) for t in _list(d, "inputs")),
            outputs=tuple(TensorSpec.from_json(t) for t in _list(d, "outputs")),
            states=tuple(StatePair.from_json(s) for s in _list(d, "states")),
            nodes=tuple(Node.from_json(n) for n in _list(d, "nodes")),
            constants=constants,
        )


def check_shape(shape: tuple[int, ...], *, what: str) -> None:
    """Refuse shapes that are malformed or too large to allocate, before anything allocates."""
    if len(shape) > MAX_RANK:
        raise GraphError(f"{what}: rank {len(shape)} exceeds the limit of {MAX_RANK}")
    size = 1
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise GraphError(f"{what}: shape {list(shape)} must hold non-negative integers")
        size *= max(d, 1)  # a 0 dim must not hide the others: numpy still multiplies them
    if size > MAX_ELEMENTS:
        raise GraphError(f"{what}: shape {list(shape)} has {size} elements (limit {MAX_ELEMENTS})")


def validate(g: Graph) -> None:
    """Every node fits its op's contract in ops.py: its number of inputs, one output, the
    attributes the op needs. The executor and both emitters call it before anything runs;
    the error names the op and the node (emitters re-raise it as an ExportError)."""
    for n in g.nodes:
        op = OPS[n.op]
        where = f"op {n.op!r} (node producing {n.outputs[0] if n.outputs else '?'!r}"
        where += f" from {n.source})" if n.source else ")"
        if len(n.outputs) != 1 or not op.min_inputs <= len(n.inputs) <= op.max_inputs:
            raise GraphError(
                f"{where} takes {op.min_inputs}-{op.max_inputs} inputs and one output, "
                f"node has {len(n.inputs)} inputs, {len(n.outputs)} outputs"
            )
        missing = [a for a in op.attrs if a not in n.attrs]
        if missing:
            raise GraphError(f"{where} lacks attributes {missing}")


def _check_structure(g: Graph) -> None:
    """Checked on construction: every tensor defined once before use, ops known, states
    consistent."""
    defined: set[str] = set(g.constants)
    for t in g.inputs:
        _define(defined, t.name, "graph input")
    for n in g.nodes:
        if n.op not in OPS:
            raise GraphError(f"unknown op {n.op!r} in graph (node producing {n.outputs})")
        for i in n.inputs:
            if i not in defined:
                raise GraphError(f"op {n.op!r} reads {i!r} before anything defines it")
        for o in n.outputs:
            _define(defined, o, f"output of op {n.op!r}")
    for t in g.outputs:
        if t.name not in defined:
            raise GraphError(f"graph output {t.name!r} is never computed")
    _check_ids(g)
    names = {t.name: t for t in g.inputs} | {t.name: t for t in g.outputs}
    ins, outs = {t.name for t in g.inputs}, {t.name for t in g.outputs}
    for s in g.states:
        if s.input not in ins or s.output not in outs:
            raise GraphError(
                f"state {s.input!r} -> {s.output!r}: must be a graph input -> a graph output"
            )
        if s.init not in g.constants:
            raise GraphError(f"state {s.input!r}: initial value {s.init!r} missing")
        if g.constants[s.init].dtype != np.float32:
            raise GraphError(f"state {s.input!r}: initial value {s.init!r} must be float32")
        shapes = {names[s.input].shape, names[s.output].shape, g.constants[s.init].shape}
        if len(shapes) != 1:
            raise GraphError(f"state {s.input!r}: input, output and initial shapes differ")


def _check_ids(g: Graph) -> None:
    """Integer tensors are graph inputs (token ids) read only as the index of a `gather`, and
    every gather index is one: every other op and every output is float32."""
    ids = {t.name for t in g.inputs if t.dtype in INDEX_DTYPES}
    for t in g.outputs:
        if t.dtype != "float32":
            raise GraphError(f"graph output {t.name!r} must be float32, not {t.dtype}")
    for n in g.nodes:
        for k, i in enumerate(n.inputs):
            index = n.op == "gather" and k == 1
            if (i in ids) != index:
                what = "integer input" if i in ids else "tensor"
                raise GraphError(
                    f"op {n.op!r} reads {what} {i!r} as operand {k}: integer ids are read only "
                    "as the index of a gather"
                )


def _define(defined: set[str], name: str, what: str) -> None:
    if name in defined:
        raise GraphError(f"tensor {name!r} ({what}) is defined twice")
    defined.add(name)


def _str(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key) if isinstance(d, Mapping) else None
    if not isinstance(v, str):
        raise GraphError(f"field {key!r} must be a string")
    return v


def _list(d: Mapping[str, Any], key: str) -> list[Any]:
    v = d.get(key) if isinstance(d, Mapping) else None
    if not isinstance(v, list):
        raise GraphError(f"field {key!r} must be a list")
    return v


def _names(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    v = _list(d, key)
    if not all(isinstance(x, str) for x in v):
        raise GraphError(f"field {key!r} must be a list of tensor names")
    return tuple(v)


def _shape(d: Mapping[str, Any], key: str) -> tuple[int, ...]:
    v = _list(d, key)
    shape = tuple(v)
    check_shape(shape, what=f"field {key!r}")
    return shape
