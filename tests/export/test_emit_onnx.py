"""emit_onnx: every op against the numpy executor in onnxruntime, plus structure and errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers_graph import make_graph, node, rand, random_feeds
from onnx import numpy_helper
from op_cases import CASES, graph_of, ids, op_graph, ops_covered

from rnnedge.errors import ExportError, GraphError
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.onnx import float_ops as onnx_ops
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, StatePair, TensorSpec
from rnnedge.runtime.ops import OPS

TOL = 1e-5


def session(model: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def check(graph: Graph, *, seed: int = 0, low: float = -2.0, high: float = 2.0) -> onnx.ModelProto:
    """Emits `graph`, checks the model's interface, runs it in onnxruntime against Executor."""
    data = emit_onnx(graph)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    io = (
        [(t.name, list(t.shape)) for t in graph.inputs],
        [(t.name, list(t.shape)) for t in graph.outputs],
    )
    got_io = tuple(
        [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in vs]
        for vs in (model.graph.input, model.graph.output)
    )
    assert got_io == io
    # Identity is only ever needed to give an elided no-op's result a graph output's name
    outputs = {t.name for t in graph.outputs}
    assert all(n.output[0] in outputs for n in model.graph.node if n.op_type == "Identity")
    feeds = random_feeds(graph, seed, low, high)
    want = Executor(graph).run(feeds)
    got = session(data).run(None, feeds)
    for t, g in zip(graph.outputs, got, strict=True):
        assert g.shape == want[t.name].shape, t.name
        np.testing.assert_allclose(g, want[t.name], rtol=TOL, atol=TOL, err_msg=t.name)
    return model


def op_types(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("case", ids("onnx"))
def test_op_matches_executor(case: str) -> None:
    check(graph_of(case), **CASES[case].data)


def test_every_op_is_lowered_and_tested() -> None:
    assert set(onnx_ops.LOWERINGS) == set(OPS)
    assert ops_covered("onnx") == set(OPS)


def test_harness_catches_a_wrong_lowering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(onnx_ops.LOWERINGS, "sub", onnx_ops.LOWERINGS["add"])
    with pytest.raises(AssertionError):
        check(graph_of("sub-broadcast"))


def test_model_header() -> None:
    model = check(graph_of("linear-rank2"))
    assert (model.ir_version, model.producer_name) == (8, "rnnedge")
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]


def test_linear_2d_is_one_gemm_on_the_original_weight() -> None:
    model = check(graph_of("linear-rank2"))
    assert op_types(model) == ["Gemm"]
    assert {a.name: a.i for a in model.graph.node[0].attribute} == {"transB": 1}
    assert [i.name for i in model.graph.initializer] == ["c1", "c2"]


def test_linear_rank3_folds_the_transpose_into_the_weight() -> None:
    model = check(graph_of("linear-rank3"))
    assert op_types(model) == ["MatMul", "Add"]
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert set(inits) == {"c1.T", "c2"}  # the untransposed weight is not shipped
    np.testing.assert_array_equal(inits["c1.T"], CASES["linear-rank3"].operands[1].T)


def test_small_lowerings() -> None:
    assert op_types(check(graph_of("rsqrt"), **CASES["rsqrt"].data)) == [
        "Sqrt",
        "Reciprocal",
    ]
    assert op_types(check(graph_of("layer_norm-last-axis"))) == ["LayerNormalization"]
    plain = check(graph_of("layer_norm-plain"))
    (ln,) = plain.graph.node
    assert len(ln.input) == 2  # no bias input at all, rather than a zeros initializer
    np.testing.assert_array_equal(numpy_helper.to_array(plain.graph.initializer[0]), np.ones(8))
    rowwise = ("LayerNormalization", "Mul", "Add")
    assert op_types(check(graph_of("layer_norm-rowwise-weight"))) == list(rowwise)
    assert op_types(check(graph_of("layer_norm-rowwise-bias"))) == list(rowwise[::2])
    mean, total = check(graph_of("mean-keepdims")), check(graph_of("sum-two-axes"))
    assert [a.name for a in mean.graph.node[0].attribute] == ["axes", "keepdims"]
    assert len(total.graph.node[0].input) == 2  # ReduceSum takes axes as an input


def test_no_op_nodes_vanish() -> None:
    nodes = [
        node("reshape", ["x"], "a", shape=[2, 3]),
        node("transpose", ["a"], "b", perm=[0, 1]),
        node("slice", ["b"], "c", axis=1, start=0, end=3, step=1),
        node("pad", ["c"], "d", pads=[[0, 0], [0, 0]], mode="reflect", value=0.0),
        node("concat", ["d"], "e", axis=0),
        node("expand", ["e"], "f", shape=[2, 3]),
        node("mean", ["f"], "g", axes=[], keepdims=True),
        node("tanh", ["g"], "y"),
        node("reshape", ["g"], "copy", shape=[2, 3]),  # a no-op that is a graph output
    ]
    model = check(make_graph(nodes, {"x": (2, 3)}, ["y", "copy"]))
    assert op_types(model) == ["Tanh", "Identity"]


def test_outputs_may_be_inputs_or_constants() -> None:
    nodes = [node("neg", ["x"], "y")]
    graph = make_graph(nodes, {"x": (2,)}, ["y", "x", "c"], {"c": rand((3,), 1)})
    assert op_types(check(graph)) == ["Neg"]


def gru_cell(hidden: int = 6, inputs: int = 3) -> Graph:
    """PyTorch GRUCell (gates r, z, n; reset applied after the hidden matmul) plus a readout."""
    c = {"w_ih": rand((3 * hidden, inputs), 1), "w_hh": rand((3 * hidden, hidden), 2)}
    c |= {"b_ih": rand((3 * hidden,), 3), "b_hh": rand((3 * hidden,), 4), "one": np.float32(1)}
    c |= {"w_out": rand((2, hidden), 5), "h0": np.zeros((1, hidden), np.float32)}
    part = {
        g: dict(axis=1, start=i * hidden, end=(i + 1) * hidden, step=1) for i, g in enumerate("rzn")
    }
    nodes = [
        node("linear", ["x", "w_ih", "b_ih"], "gi"),
        node("linear", ["h", "w_hh", "b_hh"], "gh"),
        *(node("slice", [s], f"{s}_{g}", **part[g]) for s in ("gi", "gh") for g in "rzn"),
        node("add", ["gi_r", "gh_r"], "r_pre"),
        node("sigmoid", ["r_pre"], "r"),
        node("add", ["gi_z", "gh_z"], "z_pre"),
        node("sigmoid", ["z_pre"], "z"),
        node("mul", ["r", "gh_n"], "rn"),
        node("add", ["gi_n", "rn"], "n_pre"),
        node("tanh", ["n_pre"], "n"),
        node("sub", ["one", "z"], "keep"),
        node("mul", ["keep", "n"], "new"),
        node("mul", ["z", "h"], "old"),
        node("add", ["new", "old"], "h_next"),
        node("linear", ["h_next", "w_out"], "y"),
    ]
    state = StatePair(input="h", output="h_next", init="h0")
    return make_graph(nodes, {"x": (1, inputs), "h": (1, hidden)}, ["y", "h_next"], c, [state])


def test_gru_cell_carries_state_over_many_steps() -> None:
    graph = gru_cell()
    check(graph)  # one step from a random state
    data = emit_onnx(graph)
    assert "h0" not in {i.name for i in onnx.load_from_string(data).graph.initializer}
    sess, ex = session(data), Executor(graph)
    h_onnx = h_ref = graph.initial_state()["h"]
    for t in range(50):
        x = rand((1, 3), seed=100 + t, low=-3, high=3)
        y_onnx, h_onnx = sess.run(None, {"x": x, "h": h_onnx})
        ref = ex.run({"x": x, "h": h_ref})
        h_ref = ref["h_next"]
        np.testing.assert_allclose(y_onnx, ref["y"], rtol=TOL, atol=TOL)
        np.testing.assert_allclose(h_onnx, h_ref, rtol=TOL, atol=TOL)
    assert np.abs(h_ref).max() > 0.1  # the state really moved


def test_emission_is_deterministic() -> None:
    graph = gru_cell()
    first = emit_onnx(graph)
    assert emit_onnx(graph) == first
    reordered = Graph(
        inputs=graph.inputs,
        outputs=graph.outputs,
        nodes=graph.nodes,
        constants=dict(reversed(list(graph.constants.items()))),
        states=graph.states,
    )
    assert emit_onnx(reordered) == first


def test_emission_does_not_depend_on_the_process() -> None:
    # set and hash order change with PYTHONHASHSEED; the bytes must not
    code = (
        "import hashlib, sys; sys.path[:0] = ['tests', 'tests/export']; "
        "import test_emit_onnx as t; "
        "print(hashlib.sha256(t.emit_onnx(t.gru_cell())).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert digests == {hashlib.sha256(emit_onnx(gru_cell())).hexdigest() + "\n"}


def test_gelu_subgraphs_fuse_in_onnxruntime(tmp_path: Any) -> None:
    for case, fused in (("gelu-none", "Gelu"), ("gelu-tanh", "FastGelu")):
        graph = make_graph(
            [node("gelu", ["x"], "g", **CASES[case].attrs), node("neg", ["g"], "y")],
            {"x": (1, 8)},
            ["y"],
        )
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(tmp_path / f"{case}.onnx")
        ort.InferenceSession(emit_onnx(graph), opts, providers=["CPUExecutionProvider"])
        optimized = onnx.load(opts.optimized_model_filepath)
        assert op_types(optimized) == [fused, "Neg"], case


def expect_error(graph: Graph, *fragments: str) -> None:
    with pytest.raises(ExportError) as e:
        emit_onnx(graph)
    for f in fragments:
        assert f in str(e.value)


def test_unsupported_cases_raise_export_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GraphError, match=r"'neg' reads integer input 'x'.*index of a gather"):
        Graph(
            inputs=(TensorSpec(name="x", shape=(2,), dtype="int32"),),
            outputs=(TensorSpec(name="y", shape=(2,)),),
            nodes=(node("neg", ["x"], "y"),),
            constants={},
        )
    bad_shape = Graph(
        inputs=(TensorSpec(name="x", shape=(2,)),),
        outputs=(TensorSpec(name="y", shape=(3,)),),
        nodes=(node("neg", ["x"], "y"),),
        constants={},
    )
    expect_error(bad_shape, "'y'", "[3]", "[2]")
    monkeypatch.delitem(onnx_ops.LOWERINGS, "tanh")
    expect_error(op_graph("tanh", (2,)), "'tanh'", "'y'", "no ONNX lowering")
