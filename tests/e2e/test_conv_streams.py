"""Convolutions over time stream with their own buffer state (issue 15, part 1): exported in
float and full int8, streamed STEPS steps (single stream and streams(8)) on every backend,
against PyTorch run the way the user runs it (one forward over the whole sequence)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from time_conv_models import F_IN, MELS, BiConvTagger, CausalConvGRU, CRNNSpotter, TCNFrontEnd

import rnnedge
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime import available_backends
from rnnedge.runtime.bundle import read_bundle

STEPS = 200
N_STREAMS = 8
FLOAT_REL = 1e-5  # relative to max(1, |reference|)
INT8_BUDGET = 0.03  # of the float output's range


def _seqs(seed: int, count: int, features: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, STEPS, features)).astype(np.float32)


def _reference(model, seqs: np.ndarray) -> np.ndarray:
    """(count, STEPS, out): the model over whole sequences, all in one batch."""
    with torch.no_grad():
        return model(torch.from_numpy(seqs)).numpy()


def _export(tmp_path, name: str, model, features: int):
    torch.manual_seed(0)
    # (T, 1, 1, F) each, a little wider than the test data: an output beyond the calibrated
    # range clips (the TCN's head met one such step in 1600: 4.2% of its range at 1.0x)
    calib = list(1.25 * _seqs(1, 8, features)[:, :, None, None, :])
    # golden.npz from short sequences: recording it steps PyTorch's one-step program node by
    # node (~40 ms a step here), the slowest part of export on 3 x 200 calibration steps
    golden = [c[:48] for c in calib[:2]]
    path = export_bundle(
        model, torch.zeros(1, 1, features), tmp_path / f"{name}.rnnedge", quantize="int8",
        calibration=calib, golden=golden,
    )  # fmt: skip
    return path


def _check(got: np.ndarray, ref: np.ndarray, precision: str, what: str) -> float:
    """The error as reported: relative (float) or a fraction of the output's range (int8)."""
    if precision == "float":
        err = float(np.abs(got - ref).max()) / max(1.0, float(np.abs(ref).max()))
        assert err <= FLOAT_REL, (what, err)
        return err
    span = float(ref.max() - ref.min())
    assert span > 0.1, (what, span)  # the output really moves
    per_step = np.abs(got - ref).reshape(len(got), -1).max(axis=1)
    frac = float(per_step.max()) / span
    assert frac <= INT8_BUDGET, (what, frac)
    assert per_step[-50:].mean() <= 1.5 * per_step[:50].mean() + 0.002 * span, (what, "drift")
    return frac


def _stream_all(path, model, features: int, name: str) -> None:
    seqs = _seqs(7, N_STREAMS, features)  # data it was not calibrated on
    ref = _reference(model, seqs)
    for backend in available_backends():
        for precision in ("float", "int8"):
            m = rnnedge.load(path, backend=backend, precision=precision)
            one = np.asarray(m.stream().run(seqs[0][:, None, None, :])).reshape(STEPS, -1)
            e1 = _check(one, ref[0], precision, f"{name} {backend}/{precision}")
            many = m.streams(N_STREAMS)
            rows = [np.asarray(many.step(seqs[:, t, None, :])) for t in range(STEPS)]
            batched = np.stack(rows, axis=1).reshape(N_STREAMS, STEPS, -1)
            e8 = _check(batched, ref, precision, f"{name} {backend}/{precision} x{N_STREAMS}")
            print(f"{name} {backend}/{precision}: {e1:.2e} single, {e8:.2e} streams(8)")


@pytest.mark.slow
@pytest.mark.parametrize("style", ["slice", "pad", "const"])
@pytest.mark.parametrize("dilation", [1, 2, 4])
@pytest.mark.parametrize("k", [3, 5])
def test_causal_conv1d_gru_streams_like_pytorch(tmp_path, k, dilation, style) -> None:
    # the default run steps these through the numpy float graph only
    # (tests/export/test_conv_time.py); here every backend, float and int8, streams(8)
    torch.manual_seed(0)
    model = CausalConvGRU(k, dilation, style).eval()
    path = _export(tmp_path, "causal", model, F_IN)
    (buf,) = [s for s in read_bundle(path).manifest.states if s.input.endswith(".buffer")]
    assert (buf.input, list(buf.shape)) == ("frontend.conv.buffer", [1, F_IN, (k - 1) * dilation])
    _stream_all(path, model, F_IN, f"conv1d k={k} d={dilation} {style}")


def test_crnn_keyword_spotter_streams_like_pytorch(tmp_path) -> None:
    torch.manual_seed(0)
    model = CRNNSpotter().eval()
    path = _export(tmp_path, "crnn", model, MELS)
    names = [s.input for s in read_bundle(path).manifest.states]
    assert names == ["conv1.buffer", "conv2.buffer", "gru.h"]
    _stream_all(path, model, MELS, "crnn")


@pytest.mark.slow  # ~30 s; the default run steps its float capture (tests/export/test_conv_time.py)
def test_two_conv_tcn_front_end_streams_like_pytorch(tmp_path) -> None:
    torch.manual_seed(0)
    model = TCNFrontEnd().eval()
    path = _export(tmp_path, "tcn", model, F_IN)
    names = [s.input for s in read_bundle(path).manifest.states]
    assert names == ["tcn.0.buffer", "tcn.1.buffer", "gru.h"]
    _stream_all(path, model, F_IN, "tcn")


@pytest.mark.slow
def test_a_conv_front_end_runs_in_an_offline_bidirectional_program(tmp_path) -> None:
    torch.manual_seed(0)
    model = BiConvTagger().eval()
    path = _export(tmp_path, "biconv", model, F_IN)
    seqs = _seqs(7, 1, F_IN)
    ref = _reference(model, seqs)[0]
    for backend in available_backends():
        for precision in ("float", "int8"):
            m = rnnedge.load(path, backend=backend, precision=precision)
            got = np.asarray(m.run(seqs[0][:, None, None, :])).reshape(STEPS, -1)
            err = _check(got, ref, precision, f"biconv {backend}/{precision}")
            print(f"biconv {backend}/{precision}: {err:.2e}")
