"""Issue 14's ops, each in a small model, exported with full int8 and streamed >= 100 steps on
every backend in float and int8 against PyTorch run the way the user runs it (a sequence model
over the whole sequence, a cell stepped with its own state fed back)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from helpers import assert_close
from op_models import F_IN, MODELS, VOCAB

import rnnedge
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime import available_backends
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.quant.plan import read_plan

STEPS = 150
INT8_BUDGET = 0.03  # of the float output's range, as every int8 model of the project


def _data(seed: int, count: int, steps: int, x0: torch.Tensor) -> list[np.ndarray]:
    """N(0, 1) sequences, or token ids of the example's integer dtype."""
    rng = np.random.default_rng(seed)
    shape = (steps, *x0.shape)
    if x0.dtype.is_floating_point:
        return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    dtype = str(x0.dtype).removeprefix("torch.")
    return [rng.integers(0, VOCAB, shape).astype(dtype) for _ in range(count)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cache: dict[tuple[str, str], tuple] = {}

    def get(name: str, quantize: str = "int8"):
        if (name, quantize) not in cache:
            make, example, kind = MODELS[name]
            torch.manual_seed(0)
            model, ex = make().eval(), example()
            x0 = ex[0] if isinstance(ex, tuple) else ex
            path = export_bundle(
                model, ex, tmp_path_factory.mktemp("ops") / f"{name}.rnnedge", quantize=quantize,
                calibration=_data(1, 8, 200, x0),
            )  # fmt: skip
            cache[name, quantize] = (path, model, ex, kind)
        return cache[name, quantize]

    return get


def torch_outputs(model, example, kind: str, xs: np.ndarray) -> np.ndarray:
    """PyTorch as the user runs it: over the whole sequence, or stepped with its state."""
    with torch.no_grad():
        if kind == "sequence":
            seq = torch.from_numpy(xs).reshape(1, len(xs), *xs.shape[3:])
            return model(seq).numpy().reshape(len(xs), -1)
        states, ys = list(example[1:]), []
        for x in xs:
            y, *states = model(torch.from_numpy(x), *states)
            ys.append(y.numpy().reshape(-1))
        return np.stack(ys)


@pytest.mark.parametrize("name", list(MODELS))
def test_op_model_streams_like_pytorch_on_every_backend(exported, name):
    path, model, example, kind = exported(name)
    x0 = example[0] if isinstance(example, tuple) else example
    xs = _data(7, 1, STEPS, x0)[0]  # data it was not calibrated on
    ref = torch_outputs(model, example, kind, xs)
    span = float(ref.max() - ref.min())
    assert span > 0.1, span  # the output really moves
    for backend in available_backends():
        for precision in ("float", "int8"):
            stream = rnnedge.load(path, backend=backend, precision=precision).stream()
            got = np.asarray(stream.run(xs)).reshape(STEPS, -1)
            what = f"{name} {backend}/{precision}"
            if precision == "float":
                assert_close(got, ref, what)
                continue
            err = np.abs(got - ref).max(axis=1)
            print(f"{what}: {err.max() / span:.4f} of range")
            assert err.max() <= INT8_BUDGET * span, (what, err.max() / span)
            assert err[-50:].mean() <= 1.5 * err[:50].mean() + 0.002 * span, what  # no drift


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_op_model_streams_like_pytorch_int8_dynamic(exported, name):
    # measured 0.3-0.6% of the range on every backend
    path, model, example, kind = exported(name, "int8-dynamic")
    x0 = example[0] if isinstance(example, tuple) else example
    xs = _data(7, 1, STEPS, x0)[0]
    ref = torch_outputs(model, example, kind, xs)
    span = float(ref.max() - ref.min())
    for backend in available_backends():
        stream = rnnedge.load(path, backend=backend, precision="int8-dynamic").stream()
        got = np.asarray(stream.run(xs)).reshape(STEPS, -1)
        assert np.abs(got - ref).max() <= 0.01 * span, (name, backend)


def test_every_new_op_is_in_a_model(exported):
    ops = set()
    for name in MODELS:
        path = exported(name)[0]
        ops |= {n.op for n in rnnedge.load(path, backend="numpy").bundle.graph.nodes}
    assert {"softmax", "log_softmax", "softplus", "matmul", "gather"} <= ops, ops


def test_int8_embedding_table_is_int8_per_row_in_every_file(exported):
    path = exported("char-lm-int64")[0]
    bundle = read_bundle(path)
    plan = read_plan(bundle.files, str(path))
    (gather,) = [n for n in bundle.graph.nodes if n.op == "gather"]
    table = plan.weight(gather.outputs[0])
    assert (table.tensor, table.dtype, table.axis, len(table.scale)) == (
        gather.inputs[0],
        "int8",
        0,
        VOCAB,
    )
    assert "gather" in {t.why.split("'")[1] for t in plan.left_float if t.tensor == "ids"}
    model = onnx.load_from_string(bundle.files["model.int8.onnx"])
    int8_inits = [i.dims for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert [VOCAB, F_IN] in [list(d) for d in int8_inits]
    assert not any(list(i.dims) == [VOCAB, F_IN] and i.data_type == onnx.TensorProto.FLOAT
                   for i in model.graph.initializer)  # fmt: skip


def test_check_data_takes_token_ids_for_an_integer_input(exported, tmp_path, capsys):
    # `rnnedge check --data` refused integer arrays ("not a float type"), so a token-id model
    # could not be checked on the user's own text; floats and ids past the table are refused
    from rnnedge.cli import main

    path = exported("char-lm-int64")[0]
    ids = np.random.default_rng(4).integers(0, VOCAB, (3, 40)).astype(np.int32)
    np.savez(tmp_path / "ids.npz", text=ids)
    assert main(["check", str(path), "--data", str(tmp_path / "ids.npz")]) == 0
    assert "numpy" in capsys.readouterr().out
    for bad, said in [(ids.astype(np.float32), "not an integer type"), (ids + VOCAB, "outside")]:
        np.savez(tmp_path / "bad.npz", text=bad)
        assert main(["check", str(path), "--data", str(tmp_path / "bad.npz")]) == 2
        assert said in capsys.readouterr().err
