"""K-step chunks (docs/time.md): stream.run through the chunk model gives the numbers of
stepping one by one (float within 1e-6, int8 identical), and PyTorch's over the sequence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import assert_close
from models import rnn_with_head

import rnnedge
from rnnedge.errors import ExportError

F_IN, STEPS = 6, 203  # 50 chunks of 4 and a remainder of 3


@pytest.fixture(scope="module", params=[("gru", 2), ("lstm", 1)], ids=["gru2", "lstm"])
def chunked(request, tmp_path_factory):
    kind, layers = request.param
    model = rnn_with_head(kind, 16, layers, F_IN)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((80, 1, 1, F_IN)).astype(np.float32) for _ in range(4)]
    out = tmp_path_factory.mktemp("chunk") / f"{kind}.rnnedge"
    path = rnnedge.export(
        model, torch.zeros(1, 1, F_IN), out=out, quantize="int8", calibration=calib, chunk=4
    )
    return model, path


@pytest.mark.parametrize("precision", ["float", "int8"])
@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_chunked_run_equals_stepping_and_pytorch(chunked, backend, precision):
    model, path = chunked
    xs = np.random.default_rng(1).standard_normal((STEPS, 1, 1, F_IN)).astype(np.float32)
    m = rnnedge.load(path, backend=backend, precision=precision)
    run, stepped = m.stream(), m.stream()
    assert run.chunk == 4
    ys = run.run(xs)
    ref = np.stack([stepped.step(x) for x in xs])
    if precision == "float":
        assert_close(ys, ref, f"{backend} chunked vs stepped", tol=1e-6)
        with torch.no_grad():
            torch_ys = model(torch.from_numpy(xs[:, 0, 0][None])).numpy()[0]
        assert_close(ys[:, 0, 0], torch_ys, f"{backend} chunked vs PyTorch")
    else:
        np.testing.assert_array_equal(ys, ref, f"{backend} int8 chunked vs stepped")
    for name, state in stepped.state.items():  # the state carried on after the run
        assert_close(
            run.state[name], state, f"state {name}", tol=1e-6 if precision == "float" else 0
        )
    # a second run continues from that state, as a stream does
    more = xs[:9]
    assert_close(run.run(more), np.stack([stepped.step(x) for x in more]), "second run", 1e-6)


def test_numpy_steps_and_the_manifest_records_k(chunked):
    _, path = chunked
    m = rnnedge.load(path, backend="numpy")
    assert m.bundle.manifest.chunk == 4
    assert m.stream().chunk == 0  # its chunk would be the same loop over steps


@pytest.mark.parametrize("k", [0, 1, 1000, 2.5, True])
def test_a_bad_chunk_size_is_refused(tmp_path, k):
    with pytest.raises(ExportError, match=r"chunk=.*must be an integer in 2\.\.256"):
        rnnedge.export(rnn_with_head("gru", 8, 1, F_IN), torch.zeros(1, 1, F_IN),
                       out=tmp_path / "x.rnnedge", chunk=k)  # fmt: skip
    assert not (tmp_path / "x.rnnedge").exists()


def test_the_gate_refuses_a_chunk_model_that_strays(tmp_path, monkeypatch):
    import rnnedge.export.chunk as chunk

    real = chunk.chunk_plan

    def off_by_a_scale(graph, plan, k):  # step 1 of each chunk quantized with other scales
        p = real(graph, plan, k)
        wrong = lambda t: dataclasses.replace(t, scale=tuple(1.5 * s for s in t.scale))  # noqa: E731
        bad = [wrong(t) if t.tensor.endswith("@1") and t.scale else t for t in p.tensors]
        return dataclasses.replace(p, tensors=tuple(bad))

    monkeypatch.setattr(chunk, "chunk_plan", off_by_a_scale)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((40, 1, 1, F_IN)).astype(np.float32) for _ in range(4)]
    with pytest.raises(ExportError, match=r"int8 .*chunk model differs from stepping"):
        rnnedge.export(
            rnn_with_head("gru", 8, 1, F_IN),
            torch.zeros(1, 1, F_IN),
            out=tmp_path / "x.rnnedge",
            quantize="int8",
            calibration=calib,
            chunk=4,
        )
    assert not (tmp_path / "x.rnnedge").exists()
