"""graph.validate is the one check of every node against its op's contract (arity, one output,
attributes): the executors refuse a bad node with a GraphError, both emitters with an
ExportError, and each message names the op and the node."""

from __future__ import annotations

import numpy as np
import pytest

from rnnedge.errors import ExportError, GraphError
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, Node, TensorSpec, validate


def _graph(node: Node) -> Graph:
    return Graph(
        inputs=(TensorSpec(name="x", shape=(2, 3)), TensorSpec(name="w", shape=(3, 3))),
        outputs=(TensorSpec(name="y", shape=(2, 3)),),
        nodes=(node,),
        constants={},
    )


BAD = {
    "too many inputs": (
        Node(op="tanh", inputs=("x", "w"), outputs=("y",), source="head.act"),
        r"op 'tanh' \(node producing 'y' from head\.act\) takes 1-1 inputs and one output, "
        r"node has 2 inputs, 1 outputs",
    ),
    "missing attributes": (
        Node(op="reshape", inputs=("x",), outputs=("y",)),
        r"op 'reshape' \(node producing 'y'\) lacks attributes \['shape'\]",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_node_is_refused_by_name_everywhere(case: str) -> None:
    node, message = BAD[case]
    g = _graph(node)
    with pytest.raises(GraphError, match=message):
        validate(g)
    with pytest.raises(GraphError, match=message):
        Executor(g)
    with pytest.raises(ExportError, match="ONNX export: " + message):
        emit_onnx(g)
    with pytest.raises(ExportError, match="TFLite export: " + message):
        emit_tflite(g)


def test_a_good_node_passes() -> None:
    g = _graph(Node(op="linear", inputs=("x", "w"), outputs=("y",)))
    validate(g)
    x, w = np.ones((2, 3), np.float32), np.eye(3, dtype=np.float32)
    np.testing.assert_array_equal(Executor(g).run({"x": x, "w": w})["y"], x)
