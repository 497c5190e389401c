"""emit_tflite: every Graph op, lowered to TFLite, matches the numpy executor within 1e-5.

Each case is a small hand-built Graph run by the LiteRT interpreter twice, with its default
XNNPACK delegate and with the builtin kernels alone, and compared with `Executor`.
"""

from __future__ import annotations

import numpy as np
import pytest
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from helpers import assert_close
from helpers_graph import make_graph, node, rand, random_feeds

from rnnedge.errors import ExportError
from rnnedge.export.tflite import emit_tflite
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, StatePair
from rnnedge.runtime.ops import OPS

RESOLVERS = {
    "xnnpack": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
}
OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


# --- helpers ------------------------------------------------------------------------------


def const(shape: tuple[int, ...], seed: int = 7, low: float = -1.0, high: float = 1.0):
    return rand(shape, seed, low, high)


def op_graph(op: str, *operands: tuple[int, ...] | np.ndarray, **attrs) -> Graph:
    """One node `op` reading `operands` in order: a shape is a graph input, an array a constant."""
    inputs = {f"in{i}": v for i, v in enumerate(operands) if isinstance(v, tuple)}
    consts = {f"in{i}": v for i, v in enumerate(operands) if not isinstance(v, tuple)}
    names = [f"in{i}" for i in range(len(operands))]
    return make_graph([node(op, names, "y", **attrs)], inputs, ["y"], consts)


def conv(
    x: tuple[int, ...],
    w: tuple[int, ...],
    *,
    bias: bool = False,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> Graph:
    """A conv1d node over input shape `x` with constant weights of shape `w`."""
    operands = (x, const(w), const((w[0],), 9)) if bias else (x, const(w))
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return op_graph("conv1d", *operands, **attrs)


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


# --- one case per op feature; ids say what is covered ---------------------------------------

X = (2, 3, 4)
SCALAR = np.array(0.75, np.float32)
POS = {"low": 0.2, "high": 3.0}  # domain of sqrt, rsqrt, log, and bases of pow / divisors
WIDE = {"low": -4.0, "high": 4.0}

BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
CASES: dict[str, tuple[Graph, dict]] = {}
for _op in BINARY:
    _pos = POS if _op in ("div", "pow") else {}
    _c = const((4,), 3, 0.5, 2.0) if _pos else const((4,), 3)
    CASES[f"{_op}-same"] = (op_graph(_op, X, X), _pos)
    CASES[f"{_op}-broadcast"] = (op_graph(_op, (2, 1, 4), (3, 1)), _pos)
    CASES[f"{_op}-scalar-const-first"] = (op_graph(_op, SCALAR, X), _pos)
    CASES[f"{_op}-vector-const"] = (op_graph(_op, X, _c), _pos)
    CASES[f"{_op}-rank6"] = (op_graph(_op, (2, 1, 2, 1, 2, 1), (3, 1, 3, 1, 3)), _pos)
for _op in ["neg", "abs", "exp", "sigmoid", "tanh", "relu"]:
    CASES[_op] = (op_graph(_op, X), WIDE)
for _op in ["sqrt", "rsqrt", "log"]:
    CASES[_op] = (op_graph(_op, X), POS)
CASES |= {
    # torch's x.pow(2) / x ** 3 on negative bases: must not go through exp(y log x)
    "pow-square-negative-base": (op_graph("pow", X, np.array(2.0, np.float32)), WIDE),
    "pow-cube-negative-base": (op_graph("pow", X, np.array(3.0, np.float32)), WIDE),
    "sigmoid-saturating": (op_graph("sigmoid", X), {"low": -30.0, "high": 30.0}),
    "gelu-none": (op_graph("gelu", X, approximate="none"), WIDE),
    "gelu-tanh": (op_graph("gelu", X, approximate="tanh"), WIDE),
    "linear-rank2": (op_graph("linear", (2, 5), const((3, 5)), const((3,), 8)), {}),
    "linear-rank1-nobias": (op_graph("linear", (5,), const((3, 5))), {}),
    "linear-rank3": (op_graph("linear", (2, 4, 5), const((3, 5)), const((3,), 8)), {}),
    "linear-rank4-nobias": (op_graph("linear", (2, 2, 4, 5), const((6, 5))), {}),
    "linear-runtime-weights": (op_graph("linear", (2, 5), (3, 5)), {}),
    "linear-scalar-bias": (op_graph("linear", (2, 5), const((3, 5)), SCALAR), {}),
    "conv1d-plain": (conv((1, 4, 10), (6, 4, 3)), {}),
    "conv1d-stride-dilation-pad-bias": (
        conv((2, 3, 16), (5, 3, 3), bias=True, stride=2, padding=3, dilation=2),
        {},
    ),
    "conv1d-depthwise-multiplier": (
        conv((2, 4, 9), (8, 1, 3), bias=True, stride=2, padding=1, groups=4),
        {},
    ),
    "conv1d-depthwise-dilated": (conv((1, 3, 12), (3, 1, 2), padding=2, dilation=3, groups=3), {}),
    "conv1d-one-channel": (conv((1, 1, 8), (2, 1, 4), padding=1), {}),
    "layer_norm-affine": (
        op_graph("layer_norm", X, const((4,)), const((4,), 8), axes=1, eps=1e-5),
        {"low": -3.0, "high": 5.0},
    ),
    "layer_norm-weight-only": (op_graph("layer_norm", X, const((4,)), axes=1, eps=1e-3), {}),
    "layer_norm-two-axes-plain": (op_graph("layer_norm", X, axes=2, eps=1e-5), {}),
    "mean-keepdims": (op_graph("mean", X, axes=[1], keepdims=True), {}),
    "mean-two-axes": (op_graph("mean", X, axes=[0, 2], keepdims=False), {}),
    "mean-to-scalar": (op_graph("mean", X, axes=[0, 1, 2], keepdims=False), {}),
    "mean-no-axes": (op_graph("mean", X, axes=[], keepdims=True), {}),
    "sum-keepdims": (op_graph("sum", X, axes=[2], keepdims=True), {}),
    "sum-two-axes": (op_graph("sum", X, axes=[0, 1], keepdims=False), {}),
    "reshape-flatten": (op_graph("reshape", X, shape=(6, 4)), {}),
    "reshape-unsqueeze": (op_graph("reshape", X, shape=(2, 1, 12)), {}),
    "reshape-to-scalar": (op_graph("reshape", (1, 1), shape=()), {}),
    "reshape-from-scalar": (op_graph("reshape", (), shape=(1, 1)), {}),
    "transpose-rank3": (op_graph("transpose", X, perm=(2, 0, 1)), {}),
    "transpose-rank4": (op_graph("transpose", (2, 3, 4, 5), perm=(0, 2, 3, 1)), {}),
    "concat-three-with-const": (op_graph("concat", X, const((2, 2, 4)), (2, 1, 4), axis=1), {}),
    "concat-axis0": (op_graph("concat", (1, 3), (2, 3), axis=0), {}),
    "concat-single": (op_graph("concat", X, axis=2), {}),
    "expand-rank-up": (op_graph("expand", (3, 1), shape=(2, 3, 4)), {}),
    "expand-scalar": (op_graph("expand", (), shape=(2, 2)), {}),
    "expand-const": (op_graph("expand", const((1, 4)), shape=(3, 4)), {}),
    "slice-contiguous": (op_graph("slice", X, axis=1, start=1, end=3, step=1), {}),
    "slice-strided": (op_graph("slice", (2, 9), axis=1, start=1, end=8, step=3), {}),
    "slice-axis0-to-end": (op_graph("slice", X, axis=0, start=1, end=2, step=1), {}),
    "pad-zeros": (op_graph("pad", (2, 3), pads=[[1, 2], [0, 3]], mode="constant", value=0.0), {}),
    "pad-value": (
        op_graph("pad", X, pads=[[0, 0], [2, 1], [1, 1]], mode="constant", value=-1.5),
        {},
    ),
    "pad-reflect": (
        op_graph("pad", (1, 4, 6), pads=[[0, 0], [0, 0], [2, 3]], mode="reflect", value=0.0),
        {},
    ),
    "pad-reflect-two-axes": (
        op_graph("pad", (3, 5), pads=[[2, 1], [1, 4]], mode="reflect", value=0.0),
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_op(case: str) -> None:
    graph, data = CASES[case]
    check(graph, **data)


def test_every_op_has_a_case() -> None:
    covered = {n.op for graph, _ in CASES.values() for n in graph.nodes}
    assert covered == set(OPS)


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
    codes = op_codes(emit_tflite(CASES[case][0]))
    assert codes[: len(expected)] == expected


def test_options_carry_attributes() -> None:
    assert options(emit_tflite(CASES["gelu-tanh"][0]), "GELU", tflite.GeluOptions).Approximate()
    assert not options(emit_tflite(CASES["gelu-none"][0]), "GELU", tflite.GeluOptions).Approximate()
    fc = options(
        emit_tflite(CASES["linear-rank3"][0]), "FULLY_CONNECTED", tflite.FullyConnectedOptions
    )
    assert fc.KeepNumDims()
    conv = options(
        emit_tflite(CASES["conv1d-stride-dilation-pad-bias"][0]), "CONV_2D", tflite.Conv2DOptions
    )
    assert (conv.StrideW(), conv.DilationWFactor(), conv.Padding()) == (2, 2, tflite.Padding.VALID)
    dw = options(
        emit_tflite(CASES["conv1d-depthwise-multiplier"][0]),
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
    m = tflite.Model.GetRootAs(emit_tflite(CASES["gelu-none"][0]), 0)
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
