"""ONE table of op cases, read by the three per-op tests.

tests/spec/test_ops.py checks each case's numpy op (runtime/ops.py) against PyTorch;
tests/export/test_emit_onnx.py and test_emit_tflite.py emit the case's one-node Graph and
check onnxruntime and LiteRT against the numpy executor. A case names its op, its operands
(a shape is a graph input "x{i}", an array a constant "c{i}"), its attributes and the range
its seeded input data is drawn from; `layers` says which of the three tests read it, and `why`
says why a layer is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from helpers_graph import make_graph, node, rand, random_feeds

from rnnedge.runtime.graph import Graph

LAYERS = frozenset({"torch", "onnx", "tflite"})


@dataclass(frozen=True)
class Ids:
    """An integer graph input of token ids (a gather's index operand)."""

    shape: tuple[int, ...]
    dtype: str = "int64"


Operand = tuple[int, ...] | np.ndarray | Ids


def op_graph(op: str, *operands: Operand, **attrs: Any) -> Graph:
    """One `op` node reading `operands` in order: a shape (or Ids) is input "x{i}", an array
    "c{i}"."""
    names = [f"c{i}" if isinstance(a, np.ndarray) else f"x{i}" for i, a in enumerate(operands)]
    inputs = {n: getattr(a, "shape", a) for n, a in zip(names, operands) if n[0] == "x"}
    dtypes = {n: a.dtype for n, a in zip(names, operands) if isinstance(a, Ids)}
    consts = {n: np.asarray(a, np.float32) for n, a in zip(names, operands) if n[0] == "c"}
    return make_graph([node(op, names, "y", **attrs)], inputs, ["y"], consts, dtypes=dtypes)


@dataclass(frozen=True)
class OpCase:
    id: str
    op: str
    operands: tuple[Operand, ...]
    attrs: Mapping[str, Any]
    low: float = -1.0
    high: float = 1.0
    layers: frozenset[str] = LAYERS
    why: str = ""  # why a layer is left out
    torch_tol: float = 2e-6  # numpy vs PyTorch, absolute and relative
    seed: int = 0

    def graph(self) -> Graph:
        return op_graph(self.op, *self.operands, **self.attrs)

    @property
    def data(self) -> dict[str, float]:
        """Where the seeded input data comes from: the keywords of the layers' check()."""
        return {"seed": self.seed, "low": self.low, "high": self.high}

    def values(self) -> list[np.ndarray]:
        """The op's operands as arrays, in order: the seeded inputs and the constants."""
        graph = self.graph()
        data = {**random_feeds(graph, **self.data), **graph.constants}
        return [data[name] for name in graph.nodes[0].inputs]


def const(shape: tuple[int, ...], seed: int = 7, low: float = -1.0, high: float = 1.0):
    return rand(shape, seed, low, high)


X = (2, 3, 4)
SCALAR = np.array(0.75, np.float32)
POS = {"low": 0.2, "high": 3.0}  # domain of sqrt, rsqrt, log, and bases of pow / divisors
WIDE = {"low": -4.0, "high": 4.0}
NOT_TFLITE = LAYERS - {"tflite"}

CASES: dict[str, OpCase] = {}


def case(name: str, op: str, *operands: Operand, data=None, layers=LAYERS, why="", **attrs):
    """Adds one case to CASES; `data` is its {"low", "high"} input range (and torch_tol)."""
    assert name not in CASES, name
    CASES[name] = OpCase(name, op, operands, attrs, layers=layers, why=why, **(data or {}))


def conv(name: str, x: tuple[int, ...], w: tuple[int, ...], *, bias: bool = False, **attrs):
    """A conv1d case over input shape `x` with constant weights of shape `w`."""
    operands = (x, const(w), const((w[0],), 9)) if bias else (x, const(w))
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    layers = attrs.pop("layers", LAYERS)
    case(name, "conv1d", *operands, layers=layers, why=attrs.pop("why", ""), **defaults | attrs)


# --- elementwise ------------------------------------------------------------------------------

for _op in ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]:
    _pos = POS if _op in ("div", "pow") else None
    _c = const((4,), 3, 0.5, 2.0) if _pos else const((4,), 3)
    case(f"{_op}-same", _op, X, X, data=_pos)
    case(f"{_op}-broadcast", _op, (2, 1, 4), (3, 1), data=_pos)
    case(f"{_op}-scalar-const-first", _op, SCALAR, X, data=_pos)
    case(f"{_op}-vector-const", _op, X, _c, data=_pos)
    case(f"{_op}-rank6", _op, (2, 1, 2, 1, 2, 1), (3, 1, 3, 1, 3), data=_pos)
case("add-scalar-const", "add", (2, 3), SCALAR)
case("pow-scalar-exponent", "pow", (2, 3), np.array(1.7, np.float32), data=POS)
# torch's x.pow(2) / x ** 3 on negative bases: must not go through exp(y log x)
case("pow-square-negative-base", "pow", X, np.array(2.0, np.float32), data=WIDE)
case("pow-cube-negative-base", "pow", X, np.array(3.0, np.float32), data=WIDE)
for _op in ["neg", "abs", "exp", "sigmoid", "tanh", "relu"]:
    case(_op, _op, X, data=WIDE)
for _op in ["sqrt", "rsqrt", "log"]:
    case(_op, _op, X, data=POS)
case("sigmoid-saturating", "sigmoid", X, data={"low": -30.0, "high": 30.0})
case("tanh-saturating", "tanh", (4, 16), data={"low": -8.0, "high": 8.0})
case("gelu-none", "gelu", X, data=WIDE, approximate="none")
case("gelu-tanh", "gelu", X, data=WIDE, approximate="tanh")
case("softplus", "softplus", X, data=WIDE, beta=1.0, threshold=20.0)
case("softplus-beta-threshold", "softplus", (4, 16), data={"low": -12.0, "high": 12.0},
     beta=2.0, threshold=10.0)  # fmt: skip
# far past exp's float32 overflow (x = 89) both ways: x above the threshold, 0 far below
case("softplus-extreme", "softplus", (4, 16), data={"low": -300.0, "high": 300.0}, beta=1.0,
     threshold=20.0)  # fmt: skip
case("softmax-last-axis", "softmax", X, data=WIDE, axis=2)
case("softmax-middle-axis", "softmax", X, data=WIDE, axis=1)
case("softmax-large-logits", "softmax", (2, 8), data={"low": -300.0, "high": 300.0}, axis=1)
case("log_softmax-last-axis", "log_softmax", X, data=WIDE, axis=2)
case("log_softmax-first-axis", "log_softmax", X, data=WIDE, axis=0)
case("log_softmax-large-logits", "log_softmax", (2, 8), data={"low": -300.0, "high": 300.0,
     "torch_tol": 1e-5}, axis=1)  # fmt: skip

# --- linear and conv1d ------------------------------------------------------------------------

W, B = const((5, 4), 0), const((5,), 1)
case("linear-rank2", "linear", (2, 5), const((3, 5)), const((3,), 8))
case("linear-rank2-nobias", "linear", (1, 4), W)
case("linear-rank1", "linear", (4,), W, B)
case("linear-rank1-nobias", "linear", (5,), const((3, 5)))
case("linear-rank3", "linear", (2, 4, 5), const((3, 5)), const((3,), 8))
case("linear-rank3-nobias", "linear", (1, 1, 4), W)
case("linear-rank4-nobias", "linear", (2, 2, 4, 5), const((6, 5)))
case("linear-runtime-weights", "linear", (2, 5), (3, 5))
case("linear-rank3-runtime-weights", "linear", (1, 2, 4), (5, 4))
case("linear-scalar-bias", "linear", (2, 5), const((3, 5)), SCALAR)
case("linear-bias-broadcasts-up", "linear", (2, 4), W, const((3, 1, 5), 2))
case("matmul-2d", "matmul", (2, 3), (3, 4))
case("matmul-batched", "matmul", (2, 3, 4), (2, 4, 5))
case("matmul-broadcast-const", "matmul", (2, 3, 4), const((4, 5)))
case("matmul-outer", "matmul", (2, 4, 1), (2, 1, 3))  # einsum "bi,bj->bij" as a bmm
case("gather-one-id", "gather", const((10, 4)), Ids((1, 1)))
case("gather-int32-ids", "gather", const((7, 3, 2)), Ids((2, 3), "int32"))
conv("conv1d-plain", (1, 4, 10), (6, 4, 3))
conv("conv1d-stride-dilation-pad-bias", (2, 3, 16), (5, 3, 3), bias=True, stride=2, padding=3,
     dilation=2)  # fmt: skip
conv("conv1d-depthwise-multiplier", (2, 4, 9), (8, 1, 3), bias=True, stride=2, padding=1, groups=4)
conv("conv1d-depthwise-bias", (1, 6, 5), (6, 1, 3), bias=True, padding=2, groups=6)
conv("conv1d-depthwise-dilated", (1, 3, 12), (3, 1, 2), padding=2, dilation=3, groups=3)
conv("conv1d-one-channel", (1, 1, 8), (2, 1, 4), padding=1)
conv("conv1d-grouped", (2, 4, 11), (6, 2, 3), bias=True, stride=2, padding=3, dilation=2,
     groups=2, layers=NOT_TFLITE, why="TFLite has no grouped conv")  # fmt: skip

# --- normalisation and reductions -------------------------------------------------------------

case("layer_norm-affine", "layer_norm", X, const((4,)), const((4,), 8), data={"low": -3.0,
     "high": 5.0}, axes=1, eps=1e-5)  # fmt: skip
case("layer_norm-last-axis", "layer_norm", (2, 8), const((8,), 1), const((8,), 2), axes=1,
     eps=1e-5)  # fmt: skip
case("layer_norm-two-axes-affine", "layer_norm", X, const((3, 4), 1), const((3, 4), 2),
     data={"low": -6.0, "high": 14.0}, axes=2, eps=1e-3)  # fmt: skip
case("layer_norm-weight-only", "layer_norm", X, const((4,)), axes=1, eps=1e-3)
case("layer_norm-weight-only-2d", "layer_norm", (3, 8), const((1, 8), 3), axes=1, eps=1e-5)
case("layer_norm-two-axes-plain", "layer_norm", X, axes=2, eps=1e-5)
case("layer_norm-plain", "layer_norm", (1, 3, 8), axes=1, eps=1e-5)
case("layer_norm-runtime-weights", "layer_norm", (3, 8), (8,), (8,), axes=1, eps=1e-5)
case("layer_norm-rowwise-weight", "layer_norm", (3, 8), const((3, 8), 4), const((8,), 5), axes=1,
     eps=1e-5)  # fmt: skip
case("layer_norm-rowwise-bias", "layer_norm", (3, 8), const((8,), 4), const((3, 8), 5), axes=1,
     eps=1e-5)  # fmt: skip
# x - mean at |x| ~ 52 is exact only to a float32 ulp there (4e-6), rounded differently by torch
case("layer_norm-offset", "layer_norm", (2, 16), data={"low": 50.0, "high": 54.0,
     "torch_tol": 1e-5}, axes=1, eps=1e-5)  # fmt: skip
case("mean-keepdims", "mean", X, axes=[1], keepdims=True)
case("mean-two-axes", "mean", X, axes=[0, 2], keepdims=False)
case("mean-to-scalar", "mean", X, axes=[0, 1, 2], keepdims=False)
case("mean-no-axes", "mean", X, axes=[], keepdims=True)
case("sum-keepdims", "sum", X, axes=[2], keepdims=True)
case("sum-two-axes", "sum", X, axes=[0, 1], keepdims=False)
case("sum-all-keepdims", "sum", X, axes=[0, 1, 2], keepdims=True)

# --- shape ops --------------------------------------------------------------------------------

case("reshape-flatten", "reshape", X, shape=(6, 4))
case("reshape-unsqueeze", "reshape", X, shape=(2, 1, 12))
case("reshape-to-scalar", "reshape", (1, 1), shape=())
case("reshape-from-scalar", "reshape", (), shape=(1, 1))
case("transpose-rank3", "transpose", X, perm=(2, 0, 1))
case("transpose-rank4", "transpose", (2, 3, 4, 5), perm=(0, 2, 3, 1))
case("concat-three-with-const", "concat", X, const((2, 2, 4)), (2, 1, 4), axis=1)
case("concat-axis0", "concat", (1, 3), (2, 3), axis=0)
case("concat-single", "concat", X, axis=2)
case("expand-rank-up", "expand", (3, 1), shape=(2, 3, 4))
case("expand-same-rank", "expand", (1,), shape=(5,))
case("expand-scalar", "expand", (), shape=(2, 2))
case("expand-const", "expand", const((1, 4)), shape=(3, 4))
case("slice-contiguous", "slice", X, axis=1, start=1, end=3, step=1)
case("slice-strided", "slice", (2, 9), axis=1, start=1, end=8, step=3)
case("slice-axis0-to-end", "slice", X, axis=0, start=1, end=2, step=1)
case("slice-empty", "slice", (4, 3), axis=0, start=3, end=3, step=1)
case("pad-zeros", "pad", (2, 3), pads=[[1, 2], [0, 3]], mode="constant", value=0.0)
case("pad-value", "pad", X, pads=[[0, 0], [2, 1], [1, 1]], mode="constant", value=-1.5)
case("pad-reflect", "pad", (1, 4, 6), pads=[[0, 0], [0, 0], [2, 3]], mode="reflect", value=0.0)
case("pad-reflect-two-axes", "pad", (3, 5), pads=[[2, 1], [1, 4]], mode="reflect", value=0.0)


def ids(layer: str) -> list[str]:
    """The ids of the cases `layer` ("torch", "onnx" or "tflite") reads, in table order."""
    assert layer in LAYERS, layer
    return [c.id for c in CASES.values() if layer in c.layers]


def graph_of(name: str) -> Graph:
    """The one-node Graph of case `name`."""
    return CASES[name].graph()


def ops_covered(layer: str) -> set[str]:
    return {CASES[i].op for i in ids(layer)}
