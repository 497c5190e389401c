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

from rnnedge.errors import ExportError
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.onnx import float_ops as onnx_ops
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, StatePair, TensorSpec
from rnnedge.runtime.ops import OPS

TOL = 1e-5


def op_graph(op: str, *args: Any, **attrs: Any) -> Graph:
    """One `op` node: each arg is a shape (graph input "x{i}") or an array (constant "c{i}")."""
    inputs, constants, names = {}, {}, []
    for i, a in enumerate(args):
        if isinstance(a, tuple):
            names.append(f"x{i}")
            inputs[names[-1]] = a
        else:
            names.append(f"c{i}")
            constants[names[-1]] = np.asarray(a, np.float32)
    return make_graph([node(op, names, "y", **attrs)], inputs, ["y"], constants)


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


POS = {"low": 0.1, "high": 3.0}  # for sqrt, log, rsqrt and the base of pow
W = {k: rand(s, seed=i) for i, (k, s) in enumerate({"w": (5, 4), "b": (5,)}.items())}
CW = rand((6, 2, 3), seed=7)  # conv weight: 6 out channels, 4 in channels in 2 groups, K=3

CASES: dict[str, tuple[Graph, dict[str, float]]] = {
    "add": (op_graph("add", (2, 3), (2, 3)), {}),
    "add_broadcast": (op_graph("add", (2, 3, 4), (4,)), {}),
    "add_scalar_const": (op_graph("add", (2, 3), np.float32(0.75)), {}),
    "sub_outer": (op_graph("sub", (3, 1), (1, 4)), {}),
    "sub_scalar_first": (op_graph("sub", np.float32(1.0), (2, 3)), {}),
    "mul_broadcast": (op_graph("mul", (2, 3, 4), (3, 1)), {}),
    "div": (op_graph("div", (2, 3), (2, 3)), POS),
    "div_const": (op_graph("div", (4, 3), rand((3,), 3, 1.0, 2.0)), {}),
    "pow": (op_graph("pow", (2, 3), (2, 3)), POS),
    "pow_square": (op_graph("pow", (2, 3), np.float32(2.0)), {}),
    "maximum": (op_graph("maximum", (2, 3, 4), (3, 4)), {}),
    "minimum": (op_graph("minimum", (3, 1), rand((4,), 5)), {}),
    "neg": (op_graph("neg", (2, 5)), {}),
    "abs": (op_graph("abs", (2, 5)), {}),
    "sqrt": (op_graph("sqrt", (2, 5)), POS),
    "rsqrt": (op_graph("rsqrt", (2, 5)), POS),
    "exp": (op_graph("exp", (2, 5)), {}),
    "log": (op_graph("log", (2, 5)), POS),
    "sigmoid": (op_graph("sigmoid", (4, 16)), {"low": -20.0, "high": 20.0}),
    "tanh": (op_graph("tanh", (4, 16)), {"low": -6.0, "high": 6.0}),
    "relu": (op_graph("relu", (2, 5)), {}),
    "gelu": (op_graph("gelu", (4, 16), approximate="none"), {"low": -5.0, "high": 5.0}),
    "gelu_tanh": (op_graph("gelu", (4, 16), approximate="tanh"), {"low": -5.0, "high": 5.0}),
    "linear": (op_graph("linear", (2, 4), W["w"], W["b"]), {}),
    "linear_no_bias": (op_graph("linear", (1, 4), W["w"]), {}),
    "linear_rank3": (op_graph("linear", (2, 3, 4), W["w"], W["b"]), {}),
    "linear_rank3_no_bias": (op_graph("linear", (1, 1, 4), W["w"]), {}),
    "linear_bias_broadcasts_up": (op_graph("linear", (2, 4), W["w"], rand((3, 1, 5), 2)), {}),
    "linear_rank1": (op_graph("linear", (4,), W["w"], W["b"]), {}),
    "linear_weight_input": (op_graph("linear", (1, 2, 4), (5, 4)), {}),
    "conv1d": (
        op_graph("conv1d", (1, 2, 9), CW[:, :2], stride=1, padding=0, dilation=1, groups=1),
        {},
    ),
    "conv1d_strided_grouped": (
        op_graph(
            "conv1d", (2, 4, 11), CW, rand((6,), 8), stride=2, padding=3, dilation=2, groups=2
        ),
        {},
    ),
    "conv1d_depthwise": (
        op_graph(
            "conv1d", (1, 6, 5), CW[:, :1], rand((6,), 9), stride=1, padding=2, dilation=1, groups=6
        ),
        {},
    ),
    "layer_norm": (
        op_graph("layer_norm", (2, 8), rand((8,), 1), rand((8,), 2), axes=1, eps=1e-5),
        {},
    ),
    "layer_norm_2axes": (
        op_graph("layer_norm", (2, 3, 4), rand((3, 4), 1), rand((3, 4), 2), axes=2, eps=1e-3),
        {},
    ),
    "layer_norm_plain": (op_graph("layer_norm", (1, 3, 8), axes=1, eps=1e-5), {}),
    "layer_norm_weight_only": (
        op_graph("layer_norm", (3, 8), rand((1, 8), 3), axes=1, eps=1e-5),
        {},
    ),
    "layer_norm_weight_input": (op_graph("layer_norm", (3, 8), (8,), (8,), axes=1, eps=1e-5), {}),
    "layer_norm_rowwise_weight": (
        op_graph("layer_norm", (3, 8), rand((3, 8), 4), rand((8,), 5), axes=1, eps=1e-5),
        {},
    ),
    "layer_norm_rowwise_bias": (
        op_graph("layer_norm", (3, 8), rand((8,), 4), rand((3, 8), 5), axes=1, eps=1e-5),
        {},
    ),
    "layer_norm_offset": (
        op_graph("layer_norm", (2, 16), axes=1, eps=1e-5),
        {"low": 50, "high": 54},
    ),
    "mean": (op_graph("mean", (2, 3, 4), axes=[2], keepdims=True), {}),
    "mean_two_axes": (op_graph("mean", (2, 3, 4), axes=[0, 2], keepdims=False), {}),
    "sum": (op_graph("sum", (2, 3, 4), axes=[1], keepdims=False), {}),
    "sum_all_keep": (op_graph("sum", (2, 3, 4), axes=[0, 1, 2], keepdims=True), {}),
    "reshape": (op_graph("reshape", (2, 3, 4), shape=[6, 4]), {}),
    "reshape_split": (op_graph("reshape", (1, 12), shape=[1, 3, 1, 4]), {}),
    "transpose": (op_graph("transpose", (2, 3, 4), perm=[0, 2, 1]), {}),
    "transpose_rotate": (op_graph("transpose", (2, 3, 4), perm=[2, 0, 1]), {}),
    "concat": (op_graph("concat", (2, 3), (2, 5), axis=1), {}),
    "concat_const": (op_graph("concat", (1, 3), rand((2, 3), 6), (1, 3), axis=0), {}),
    "expand": (op_graph("expand", (3, 1), shape=[2, 3, 4]), {}),
    "expand_1d": (op_graph("expand", (1,), shape=[5]), {}),
    "slice": (op_graph("slice", (2, 7), axis=1, start=1, end=6, step=2), {}),
    "slice_head": (op_graph("slice", (4, 3), axis=0, start=0, end=2, step=1), {}),
    "slice_empty": (op_graph("slice", (4, 3), axis=0, start=3, end=3, step=1), {}),
    "pad": (
        op_graph("pad", (1, 2, 5), pads=[[0, 0], [0, 0], [2, 0]], mode="constant", value=0.0),
        {},
    ),
    "pad_value": (op_graph("pad", (2, 3), pads=[[1, 2], [0, 3]], mode="constant", value=1.5), {}),
    "pad_reflect": (
        op_graph("pad", (1, 2, 5), pads=[[0, 0], [0, 0], [3, 4]], mode="reflect", value=0.0),
        {},
    ),
    "pad_reflect_2d": (
        op_graph("pad", (4, 5), pads=[[1, 3], [2, 0]], mode="reflect", value=0.0),
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_executor(case: str) -> None:
    graph, data_range = CASES[case]
    check(graph, **data_range)


def test_every_op_is_lowered_and_tested() -> None:
    assert set(onnx_ops.LOWERINGS) == set(OPS)
    tested = {n.op for graph, _ in CASES.values() for n in graph.nodes}
    assert tested == set(OPS)


def test_harness_catches_a_wrong_lowering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(onnx_ops.LOWERINGS, "sub", onnx_ops.LOWERINGS["add"])
    with pytest.raises(AssertionError):
        check(CASES["sub_outer"][0])


def test_model_header() -> None:
    model = check(CASES["linear"][0])
    assert (model.ir_version, model.producer_name) == (8, "rnnedge")
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]


def test_linear_2d_is_one_gemm_on_the_original_weight() -> None:
    model = check(CASES["linear"][0])
    assert op_types(model) == ["Gemm"]
    assert {a.name: a.i for a in model.graph.node[0].attribute} == {"transB": 1}
    assert [i.name for i in model.graph.initializer] == ["c1", "c2"]


def test_linear_rank3_folds_the_transpose_into_the_weight() -> None:
    model = check(CASES["linear_rank3"][0])
    assert op_types(model) == ["MatMul", "Add"]
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert set(inits) == {"c1.T", "c2"}  # the untransposed weight is not shipped
    np.testing.assert_array_equal(inits["c1.T"], W["w"].T)


def test_small_lowerings() -> None:
    assert op_types(check(CASES["rsqrt"][0], **POS)) == ["Sqrt", "Reciprocal"]
    assert op_types(check(CASES["layer_norm"][0])) == ["LayerNormalization"]
    plain = check(CASES["layer_norm_plain"][0])
    (ln,) = plain.graph.node
    assert len(ln.input) == 2  # no bias input at all, rather than a zeros initializer
    np.testing.assert_array_equal(numpy_helper.to_array(plain.graph.initializer[0]), np.ones(8))
    rowwise = ("LayerNormalization", "Mul", "Add")
    assert op_types(check(CASES["layer_norm_rowwise_weight"][0])) == list(rowwise)
    assert op_types(check(CASES["layer_norm_rowwise_bias"][0])) == list(rowwise[::2])
    mean, total = check(CASES["mean"][0]), check(CASES["sum"][0])
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
    for case, fused in (("gelu", "Gelu"), ("gelu_tanh", "FastGelu")):
        graph = make_graph(
            [node("gelu", ["x"], "g", **CASES[case][0].nodes[0].attrs), node("neg", ["g"], "y")],
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
    ints = Graph(
        inputs=(TensorSpec(name="x", shape=(2,), dtype="int32"),),
        outputs=(TensorSpec(name="y", shape=(2,)),),
        nodes=(node("neg", ["x"], "y"),),
        constants={},
    )
    expect_error(ints, "'x'", "int32")
    bad_shape = Graph(
        inputs=(TensorSpec(name="x", shape=(2,)),),
        outputs=(TensorSpec(name="y", shape=(3,)),),
        nodes=(node("neg", ["x"], "y"),),
        constants={},
    )
    expect_error(bad_shape, "'y'", "[3]", "[2]")
    monkeypatch.delitem(onnx_ops.LOWERINGS, "tanh")
    expect_error(op_graph("tanh", (2,)), "'tanh'", "'y'", "no ONNX lowering")
