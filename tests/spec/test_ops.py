"""PyTorch checks the numpy op definitions (runtime/ops.py) on every case of tests/op_cases.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from op_cases import CASES, OpCase, ids, ops_covered

from rnnedge.errors import GraphError
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, Node, TensorSpec
from rnnedge.runtime.ops import OPS


def torch_linear(x, w, b=None):
    y = F.linear(x, w)
    return y if b is None else y + b


def torch_layer_norm(x, w=None, b=None, *, axes, eps):
    y = F.layer_norm(x, x.shape[x.ndim - axes :], eps=eps)
    y = y if w is None else y * w
    return y if b is None else y + b


def torch_reduce(f):
    # torch reduces over every axis when given none; the Graph op then reduces nothing
    return lambda x, *, axes, keepdims: f(x, tuple(axes), keepdim=keepdims) if axes else x


def torch_slice(x, *, axis, start, end, step):
    return x[(slice(None),) * axis + (slice(start, end, step),)]


def torch_pad(x, *, pads, mode, value):
    # torch lists [before, after] from the last axis back, and pads k <= 3 trailing axes in
    # reflect mode on a (k+1)-D input: unpadded leading axes fold into one batch axis
    flat = [p for pair in reversed(pads) for p in pair]
    if mode == "constant":
        return F.pad(x, flat, value=value)
    k = len(pads)
    while k > 1 and pads[-k] == [0, 0]:
        k -= 1
    lead = x.shape[: x.ndim - k]
    y = F.pad(x.reshape(-1, *x.shape[x.ndim - k :]), flat[: 2 * k], mode="reflect")
    return y.reshape(*lead, *y.shape[1:])


# op name -> the same computation in PyTorch, on the case's operands and attributes
TORCH = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "neg": torch.neg,
    "abs": torch.abs,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "exp": torch.exp,
    "log": torch.log,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "softmax": lambda x, *, axis: torch.softmax(x, axis),
    "log_softmax": lambda x, *, axis: torch.log_softmax(x, axis),
    "linear": torch_linear,
    "matmul": torch.matmul,
    "gather": lambda table, ids: table[ids.long()],  # F.embedding on a 2-D table
    "conv1d": F.conv1d,
    "layer_norm": torch_layer_norm,
    "mean": torch_reduce(torch.mean),
    "sum": torch_reduce(torch.sum),
    "reshape": lambda x, *, shape: x.reshape(shape),
    "transpose": lambda x, *, perm: x.permute(perm),
    "concat": lambda *xs, axis: torch.cat(xs, axis),
    "expand": lambda x, *, shape: x.broadcast_to(torch.broadcast_shapes(x.shape, shape)),
    "slice": torch_slice,
    "pad": torch_pad,
}
# these only move values: PyTorch must give the very same numbers
EXACT = {"reshape", "transpose", "concat", "expand", "slice", "pad", "neg", "abs", "relu", "gather"}


def check(case: OpCase) -> None:
    """The numpy op on the case's seeded operands matches PyTorch (exactly if it moves values)."""
    values = case.values()
    got = OPS[case.op].fn(*values, **case.attrs)
    want = TORCH[case.op](*(torch.from_numpy(np.asarray(v)) for v in values), **case.attrs)
    assert got.dtype == np.float32
    assert got.shape == tuple(want.shape)
    tol = 0 if case.op in EXACT else case.torch_tol
    np.testing.assert_allclose(got, want.numpy(), rtol=tol, atol=tol)


def test_every_op_has_a_pytorch_check() -> None:
    assert set(TORCH) == set(OPS)
    assert ops_covered("torch") == set(OPS)


@pytest.mark.parametrize("case", ids("torch"))
def test_op_matches_pytorch(case: str) -> None:
    check(CASES[case])


def test_check_catches_a_wrong_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TORCH, "sub", torch.add)
    with pytest.raises(AssertionError):
        check(CASES["sub-broadcast"])


@pytest.mark.parametrize(
    ("op", "attrs", "message"),
    [
        ("gelu", {"approximate": "fast"}, "approximate"),
        (
            "pad",
            {"pads": [[0, 0], [4, 0]], "mode": "reflect", "value": 0.0},
            "smaller than the dims",
        ),
        ("pad", {"pads": [[0, 0], [1, 0]], "mode": "edge", "value": 0.0}, "pad mode"),
        ("layer_norm", {"axes": 0, "eps": 1e-5}, "axes must be in"),
    ],
)
def test_executor_refuses_bad_attributes(op: str, attrs: dict, message: str) -> None:
    g = Graph(
        inputs=(TensorSpec(name="x", shape=(2, 3)),),
        outputs=(TensorSpec(name="y", shape=(2, 3)),),
        nodes=(Node(op=op, inputs=("x",), outputs=("y",), attrs=attrs),),
        constants={},
    )
    with pytest.raises(GraphError, match=message):
        Executor(g).run({"x": np.zeros((2, 3), np.float32)})
