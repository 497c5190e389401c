"""emit_tflite: every Graph op, lowered to TFLite, matches the numpy executor within 1e-5.

Each case of tests/op_cases.py that TFLite can lower is a one-node Graph run by the LiteRT
interpreter twice, with its default XNNPACK delegate and with the builtin kernels alone, and
compared with `Executor`; the lowering choices, the flatbuffer and the refusals are checked here.
"""

from __future__ import annotations

import numpy as np
import pytest
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from helpers import assert_close
from helpers_graph import make_graph, node, rand, random_feeds
from op_cases import CASES, const, graph_of, ids, op_graph, ops_covered

from rnnedge.errors import ExportError
from rnnedge.export.tflite import emit_tflite
from rnnedge.export.tflite import float_ops as tflite_ops
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, StatePair
from rnnedge.runtime.ops import OPS

RESOLVERS = {
    "xnnpack": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
}
OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


# --- helpers ------------------------------------------------------------------------------


def interpreter(model: bytes, resolver: OpResolverType) -> Interpreter:
    it = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def run_tflite(model: bytes, feeds: dict, resolver: OpResolverType) -> dict[str, np.ndarray]:
    it = interpreter(model, resolver)
    for d in it.get_input_details():
        it.set_tensor(d["index"], feeds[d["name"]])
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}


def check(graph: Graph, low: float = -1.0, high: float = 1.0, seed: int = 0) -> bytes:
    """Emits `graph`, runs it with both resolvers on seeded data, compares with Executor."""
    model = emit_tflite(graph)
    feeds = random_feeds(graph, seed, low, high)
    want = Executor(graph).run(feeds)
    for label, resolver in RESOLVERS.items():
        got = run_tflite(model, feeds, resolver)
        assert list(got) == [t.name for t in graph.outputs]
        for name, value in want.items():
            assert_close(got[name], value, f"{label} {name}")
    return model


def op_codes(model: bytes) -> list[str]:
    m = tflite.Model.GetRootAs(model, 0)
    sg = m.Subgraphs(0)
    codes = [m.OperatorCodes(sg.Operators(i).OpcodeIndex()) for i in range(sg.OperatorsLength())]
    return [OP_NAMES[c.BuiltinCode()] for c in codes]


def options(model: bytes, op_name: str, table: type):
    """The builtin options table of the first operator named `op_name`."""
    m = tflite.Model.GetRootAs(model, 0)
    sg = m.Subgraphs(0)
    i = op_codes(model).index(op_name)
    raw = sg.Operators(i).BuiltinOptions()
    t = table()
    t.Init(raw.Bytes, raw.Pos)
    return t


# --- every case of tests/op_cases.py that TFLite can lower -------------------------------------


@pytest.mark.parametrize("case", ids("tflite"))
def test_op(case: str) -> None:
    check(graph_of(case), **CASES[case].data)


def test_every_op_has_a_case() -> None:
    assert ops_covered("tflite") == set(OPS)


def test_harness_catches_a_wrong_lowering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tflite_ops.LOWERINGS, "sub", tflite_ops.LOWERINGS["add"])
    with pytest.raises(AssertionError):
        check(graph_of("sub-broadcast"))


# --- lowering choices, visible in the flatbuffer ---------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("sigmoid", ["LOGISTIC"]),
        ("linear-rank3", ["FULLY_CONNECTED"]),
        ("linear-scalar-bias", ["FULLY_CONNECTED", "ADD"]),
        ("conv1d-plain", ["TRANSPOSE", "RESHAPE", "CONV_2D", "RESHAPE", "TRANSPOSE"]),
        ("conv1d-depthwise-multiplier", ["TRANSPOSE", "RESHAPE", "PAD", "DEPTHWISE_CONV_2D"]),
        ("layer_norm-affine", ["MEAN", "SUB", "MUL", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "ADD"]),
        ("pad-zeros", ["PAD"]),
        ("pad-value", ["PADV2"]),
        ("pad-reflect", ["MIRROR_PAD"]),
        ("expand-scalar", ["MUL"]),
        ("slice-strided", ["STRIDED_SLICE"]),
    ],
)
def test_lowering_uses(case: str, expected: list[str]) -> None:
    codes = op_codes(emit_tflite(graph_of(case)))
    assert codes[: len(expected)] == expected


def test_options_carry_attributes() -> None:
    assert options(emit_tflite(graph_of("gelu-tanh")), "GELU", tflite.GeluOptions).Approximate()
    assert not options(emit_tflite(graph_of("gelu-none")), "GELU", tflite.GeluOptions).Approximate()
    fc = options(
        emit_tflite(graph_of("linear-rank3")), "FULLY_CONNECTED", tflite.FullyConnectedOptions
    )
    assert fc.KeepNumDims()
    conv = options(
        emit_tflite(graph_of("conv1d-stride-dilation-pad-bias")), "CONV_2D", tflite.Conv2DOptions
    )
    assert (conv.StrideW(), conv.DilationWFactor(), conv.Padding()) == (2, 2, tflite.Padding.VALID)
    dw = options(
        emit_tflite(graph_of("conv1d-depthwise-multiplier")),
        "DEPTHWISE_CONV_2D",
        tflite.DepthwiseConv2DOptions,
    )
    assert dw.DepthMultiplier() == 2


# --- a recurrent cell with its state carried ---------------------------------------------------


def gru_cell(inp: int = 3, hidden: int = 4) -> Graph:
    """PyTorch GRUCell (gates r, z, n; reset applied after the hidden matmul) plus a head."""
    h = hidden
    gates = [node("slice", [src], f"{src}_{g}", axis=1, start=i * h, end=(i + 1) * h, step=1)
             for src in ("gi", "gh") for i, g in enumerate("rzn")]  # fmt: skip
    nodes = [
        node("linear", ["x", "w_ih", "b_ih"], "gi"),
        node("linear", ["h", "w_hh", "b_hh"], "gh"),
        *gates,
        node("add", ["gi_r", "gh_r"], "r_pre"),
        node("sigmoid", ["r_pre"], "r"),
        node("add", ["gi_z", "gh_z"], "z_pre"),
        node("sigmoid", ["z_pre"], "z"),
        node("mul", ["r", "gh_n"], "rn"),
        node("add", ["gi_n", "rn"], "n_pre"),
        node("tanh", ["n_pre"], "n"),
        node("sub", ["h", "n"], "h_minus_n"),
        node("mul", ["z", "h_minus_n"], "zd"),
        node("add", ["n", "zd"], "h_next"),
        node("linear", ["h_next", "w_out"], "y"),
    ]
    consts = {
        "w_ih": const((3 * h, inp), 1), "b_ih": const((3 * h,), 2),
        "w_hh": const((3 * h, h), 3), "b_hh": const((3 * h,), 4),
        "w_out": const((2, h), 5), "h0": np.zeros((1, h), np.float32),
    }  # fmt: skip
    state = StatePair(input="h", output="h_next", init="h0")
    inputs = {"x": (1, inp), "h": (1, h)}
    return make_graph(nodes, inputs, ["y", "h_next"], consts, states=[state])


@pytest.mark.parametrize("resolver", list(RESOLVERS))
def test_gru_cell_state_carried_through_signature(resolver: str) -> None:
    graph = gru_cell()
    runner = interpreter(emit_tflite(graph), RESOLVERS[resolver]).get_signature_runner(
        "serving_default"
    )
    executor = Executor(graph)
    h_tfl = h_ref = graph.initial_state()["h"]
    for t in range(50):
        x = rand((1, 3), seed=100 + t, low=-2.0, high=2.0)
        got = runner(x=x, h=h_tfl)
        want = executor.run({"x": x, "h": h_ref})
        assert_close(got["y"], want["y"], f"y at step {t}")
        assert_close(got["h_next"], want["h_next"], f"h at step {t}")
        h_tfl, h_ref = got["h_next"], want["h_next"]
    assert np.abs(h_ref).max() > 0.1  # the state really moved


# --- model structure ------------------------------------------------------------------------


def test_flatbuffer_structure() -> None:
    graph = gru_cell()
    model = emit_tflite(graph)
    m = tflite.Model.GetRootAs(model, 0)
    assert tflite.Model.ModelBufferHasIdentifier(model, 0)
    assert (m.Version(), m.SubgraphsLength()) == (3, 1)
    assert m.Buffers(0).DataLength() == 0
    sg = m.Subgraphs(0)
    names = [sg.Tensors(i).Name().decode() for i in range(sg.TensorsLength())]
    assert [names[sg.Inputs(i)] for i in range(sg.InputsLength())] == ["x", "h"]
    assert [names[sg.Outputs(i)] for i in range(sg.OutputsLength())] == ["y", "h_next"]
    assert {n.outputs[0] for n in graph.nodes} <= set(names)  # Graph names survive
    w = sg.Tensors(names.index("w_ih"))
    data = m.Buffers(w.Buffer()).DataAsNumpy().tobytes()
    assert np.array_equal(np.frombuffer(data, "<f4").reshape(12, 3), graph.constants["w_ih"])
    for i in range(m.OperatorCodesLength()):
        code = m.OperatorCodes(i)
        assert code.DeprecatedBuiltinCode() == min(code.BuiltinCode(), 127)
    sig = m.SignatureDefs(0)
    assert sig.SignatureKey() == b"serving_default"
    assert [sig.Inputs(i).Name() for i in range(sig.InputsLength())] == [b"x", b"h"]
    assert [sig.Outputs(i).Name() for i in range(sig.OutputsLength())] == [b"y", b"h_next"]


def test_large_opcode_uses_placeholder() -> None:
    # GELU (150) does not fit the int8 deprecated field, which then holds 127.
    m = tflite.Model.GetRootAs(emit_tflite(graph_of("gelu-none")), 0)
    code = m.OperatorCodes(0)
    assert (code.BuiltinCode(), code.DeprecatedBuiltinCode()) == (150, 127)


# --- what cannot be lowered -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (
            op_graph(
                "conv1d", (1, 4, 8), const((4, 2, 3)), stride=1, padding=0, dilation=1, groups=2
            ),
            r"'conv1d' producing 'y'.*groups=2",
        ),
        (
            op_graph("conv1d", (1, 2, 8), (3, 2, 3), stride=1, padding=0, dilation=1, groups=1),
            r"'conv1d' producing 'y'.*constant",
        ),
        (
            op_graph("pad", (1,) * 6, pads=[[1, 1]] * 6, mode="constant", value=0.0),
            r"'pad' producing 'y'.*rank",
        ),
        (op_graph("tanh", (1,) * 7), r"'tanh' producing 'y'.*rank 7"),
    ],
)
def test_unsupported_raises_export_error(graph: Graph, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        emit_tflite(graph)
