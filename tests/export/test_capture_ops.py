"""Capture of issue 14's ops: no-op casts vanish, real casts are refused by name, ids reach
only an Embedding, einsums become linear / matmul, softplus stays one op; and the runtime's
checks of a token-id step input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnedge
from rnnedge.errors import ExportError, InputError, UnsupportedModelError
from rnnedge.export.capture.program import capture
from rnnedge.export.pipeline import export_bundle


class Fn(nn.Module):
    def __init__(self, f) -> None:
        super().__init__()
        self.f, self.w = f, nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        return self.f(self, x)


class Emb(nn.Module):
    def __init__(self, pre=lambda ids: ids) -> None:
        super().__init__()
        self.pre, self.emb = pre, nn.Embedding(10, 4)

    def forward(self, ids):
        return self.emb(self.pre(ids)) * 2


def ops(f, x=None) -> list[str]:
    x = torch.zeros(1, 4) if x is None else x
    return [n.op for n in capture(Fn(f), x).graph.nodes]


@pytest.mark.parametrize(
    "f",
    [
        lambda m, x: x.float() * 2,
        lambda m, x: x.to(torch.float32) * 2,
        lambda m, x: x.type_as(x) * 2,
    ],
)
def test_no_op_casts_vanish(f):
    assert ops(f) == ["mul"]


@pytest.mark.parametrize(
    ("f", "name"),
    [
        (lambda m, x: x.long().float(), r"\.long\(\) of a float32 tensor to int64"),
        (lambda m, x: x.half().float(), r"\.half\(\) of a float32 tensor to float16"),
        (lambda m, x: x.double() * 2, r"\.double\(\) of a float32 tensor to float64"),
    ],
)
def test_real_casts_are_refused_naming_the_cast(f, name):
    with pytest.raises(UnsupportedModelError, match=name) as e:
        ops(f)
    assert "_assert_tensor_metadata" not in str(e.value)


def test_ops_arrive_whole():
    assert ops(lambda m, x: F.softplus(x, beta=2.0)) == ["softplus"]
    assert ops(lambda m, x: torch.softmax(x, -1)) == ["softmax"]
    assert ops(lambda m, x: F.log_softmax(x, 0)) == ["log_softmax"]
    # einsum with a weight is a linear (int8 plans quantize it), of two activations a matmul
    assert "linear" in ops(lambda m, x: torch.einsum("bi,ij->bj", x, m.w))
    assert "matmul" in ops(
        lambda m, x: torch.einsum("bij,bjk->bik", x.view(1, 2, 2), x.view(1, 2, 2))
    )
    assert "linear" in ops(lambda m, x: x @ m.w)


def test_ids_reach_only_an_embedding():
    g = capture(Emb(), torch.zeros(1, 3, dtype=torch.int64)).graph
    assert [(t.name, t.dtype) for t in g.inputs] == [("ids", "int64")]
    assert [n.op for n in g.nodes] == ["gather", "mul"]
    # ids.long() on int32 ids: the ids as they are
    g32 = capture(Emb(lambda i: i.long()), torch.zeros(1, 3, dtype=torch.int32)).graph
    assert [n.op for n in g32.nodes] == ["gather", "mul"]
    with pytest.raises(UnsupportedModelError, match=r"'reshape' .*reads the integer ids 'ids'"):
        capture(Emb(lambda i: i.view(3)), torch.zeros(1, 3, dtype=torch.int64))
    with pytest.raises(ExportError, match="must be a float32, int32 or int64 tensor"):
        capture(Fn(lambda m, x: x * 2), torch.zeros(1, 3, dtype=torch.int16))


def test_stream_checks_token_ids(tmp_path):
    model = Emb()
    path = export_bundle(model, torch.zeros(1, 3, dtype=torch.int64), tmp_path / "e.rnnedge")
    for backend in rnnedge.runtime.available_backends():
        s = rnnedge.load(path, backend=backend).stream()
        with pytest.raises(InputError, match=r"float32 is not an integer type .*int64 token ids"):
            s.step(np.zeros((1, 3), np.float32))
        with pytest.raises(InputError, match=r"id 10 is outside the table's rows \[0, 10\)"):
            s.step(np.array([[1, 10, 2]]))
        with pytest.raises(InputError, match="id -1"):
            s.step(np.array([[-1, 0, 0]]))
        ids = np.array([[1, 9, 0]], np.int32)  # any integer dtype, converted
        with torch.no_grad():
            want = model(torch.from_numpy(ids).long()).numpy()
        np.testing.assert_allclose(s.step(ids), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("f", "want"),
    [  # logsigmoid decomposes to log1p(exp(-|x|)) (xLSTM's gates); var: xLSTM's head norm
        (lambda m, x: F.logsigmoid(x * 30), "log"),
        (lambda m, x: x.var(-1, keepdim=True) + x, "mean"),
        (lambda m, x: x.reshape(1, 2, 2).var((1, 2)), "mean"),
    ],
)
def test_log1p_and_var_lower_to_existing_ops(f, want):
    from rnnedge.runtime.executor import compile_steps, run_steps

    x = torch.randn(1, 4, generator=torch.Generator().manual_seed(0))
    graph = capture(Fn(f), x).graph
    assert want in [n.op for n in graph.nodes]
    values = {**graph.constants, graph.inputs[0].name: x.numpy()}
    got = run_steps(compile_steps(graph), values)[graph.outputs[0].name]
    ref = f(None, x).numpy()
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-6 * max(1, np.abs(ref).max())
