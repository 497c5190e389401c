"""PyTorch checks the numpy op definitions (runtime/ops.py), op by op."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnedge.errors import GraphError
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, Node, TensorSpec
from rnnedge.runtime.ops import OPS

rng = np.random.default_rng(0)


def r(*shape: int, positive: bool = False) -> np.ndarray:
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + 0.1 if positive else a


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


# op name -> (numpy inputs, attrs, the same computation in PyTorch)
CASES = {
    "add": ([r(2, 3), r(3)], {}, lambda a, b: a + b),
    "sub": ([r(2, 3), r(1, 3)], {}, lambda a, b: a - b),
    "mul": ([r(2, 3), r(2, 1)], {}, lambda a, b: a * b),
    "div": ([r(2, 3), r(3, positive=True)], {}, lambda a, b: a / b),
    "pow": ([r(2, 3, positive=True), np.float32(1.7)], {}, lambda a, b: a**b),
    "maximum": ([r(4), r(4)], {}, torch.maximum),
    "minimum": ([r(4), r(4)], {}, torch.minimum),
    "neg": ([r(5)], {}, torch.neg),
    "abs": ([r(5)], {}, torch.abs),
    "sqrt": ([r(5, positive=True)], {}, torch.sqrt),
    "rsqrt": ([r(5, positive=True)], {}, torch.rsqrt),
    "exp": ([r(5)], {}, torch.exp),
    "log": ([r(5, positive=True)], {}, torch.log),
    "sigmoid": ([r(50) * 20], {}, torch.sigmoid),
    "tanh": ([r(50) * 5], {}, torch.tanh),
    "relu": ([r(9)], {}, torch.relu),
    "gelu": ([r(50) * 4], {"approximate": "none"}, F.gelu),
    "linear": ([r(2, 1, 6), r(4, 6), r(4)], {}, F.linear),
    "conv1d": (
        [r(1, 4, 11), r(6, 2, 3), r(6)],
        {"stride": 2, "padding": 1, "dilation": 2, "groups": 2},
        lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
    ),
    "layer_norm": (
        [r(2, 3, 5) * 10 + 4, r(3, 5), r(3, 5)],
        {"axes": 2, "eps": 1e-5},
        lambda x, w, b: F.layer_norm(x, (3, 5), w, b, 1e-5),
    ),
    "mean": (
        [r(2, 3, 4)],
        {"axes": [0, 2], "keepdims": True},
        lambda x: x.mean((0, 2), keepdim=True),
    ),
    "sum": ([r(2, 3, 4)], {"axes": [1], "keepdims": False}, lambda x: x.sum(1)),
    "reshape": ([r(2, 6)], {"shape": [3, 4]}, lambda x: x.reshape(3, 4)),
    "transpose": ([r(2, 3, 4)], {"perm": [2, 0, 1]}, lambda x: x.permute(2, 0, 1)),
    "concat": ([r(2, 3), r(2, 1)], {"axis": 1}, lambda a, b: torch.cat([a, b], 1)),
    "expand": ([r(1, 3)], {"shape": [4, 3]}, lambda x: x.expand(4, 3)),
    "slice": ([r(3, 10)], {"axis": 1, "start": 1, "end": 9, "step": 3}, lambda x: x[:, 1:9:3]),
    "pad": (
        [r(1, 2, 6)],
        {"pads": [[0, 0], [0, 0], [2, 3]], "mode": "reflect", "value": 0.0},
        lambda x: F.pad(x, (2, 3), mode="reflect"),
    ),
}


def test_every_op_has_a_pytorch_check() -> None:
    assert set(CASES) == set(OPS)


@pytest.mark.parametrize("op", sorted(CASES))
def test_op_matches_pytorch(op: str) -> None:
    inputs, attrs, reference = CASES[op]
    got = OPS[op].fn(*inputs, **attrs)
    want = reference(*(t(np.asarray(a)) for a in inputs)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)


def test_gelu_tanh_and_constant_pad_match_pytorch() -> None:
    x = r(40) * 4
    np.testing.assert_allclose(
        OPS["gelu"].fn(x, approximate="tanh"), F.gelu(t(x), approximate="tanh").numpy(), atol=2e-6
    )
    pads = {"pads": [[1, 0], [2, 3]], "mode": "constant", "value": 0.5}
    want = F.pad(t(x.reshape(4, 10)), (2, 3, 1, 0), value=0.5).numpy()
    np.testing.assert_array_equal(OPS["pad"].fn(x.reshape(4, 10), **pads), want)


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
