"""What the single step (program.py) and the batched step (batched.py) share: the tensor of
each Graph name as the walk over the nodes reaches it, constants emitted on first use, and the
dequantizing copy of an output."""

from __future__ import annotations

from rnnedge.export.c.emitter import CEmitter, Tensor, c_float
from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.quant.int8 import quantize
from rnnedge.runtime.quant.plan import QParams, QuantPlan


class GraphWalk:
    def __init__(self, graph: Graph, plan: QuantPlan | None, em: CEmitter) -> None:
        self.graph, self.plan, self.em = graph, plan, em
        self.tensors: dict[str, Tensor] = {}

    def params(self, name: str) -> QParams | None:
        """The int8 plan's parameters of a tensor (None in float and int8-dynamic)."""
        if self.plan is None or self.plan.scheme != "int8":
            return None
        return self.plan.params(name)

    def input(self, node: Node, index: int) -> Tensor:
        """Input `index` of `node`: a computed tensor, or its constant (emitted once)."""
        name = node.inputs[index]
        if name in self.tensors:
            return self.tensors[name]
        value = self.graph.constants[name]
        q = self.params(name)
        if node.op == "linear" and index == 1:  # kernels lay the weight out themselves
            return Tensor("", value.shape, q)
        t = self.em.const_tensor(value if q is None else quantize(value, q), q, name)
        self.tensors[name] = t
        return t


def output_value(src: Tensor) -> str:
    """The C of element i of an output as float32: dequantized when `src` is quantized."""
    value = f"{src.var}[i]"
    if src.q is not None:
        value = f"{c_float(src.q.scale)} * (float)({value} - {src.q.zp})"
    return value
