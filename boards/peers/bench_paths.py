"""The PyTorch peers of `rnnedge bench --peers --model`, as the bench's paths: PyTorch eager
and onnxruntime on torch.onnx.export's file (boards/peers/eager.py), built from the model
spec the export CLI takes. The CLI hands them to boards/bench, which never imports torch's
code itself. torch is imported only when a peer opens, after every rnnedge path has opened,
so the memory recorded for those paths excludes it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnedge.boards.bench.paths import BenchPath, Opened, PeerPaths
from rnnedge.runtime.bundle import Bundle


def torch_peer_paths(model_spec: str, weights: str | None = None) -> PeerPaths:
    """The peers' paths for the model `model_spec` (with `weights`), given the bundle and the
    step input the bench times."""

    def make_model():
        from rnnedge.export.model_spec import load_model

        return load_model(model_spec, weights)

    def paths(bundle: Bundle, x: np.ndarray) -> list[BenchPath]:
        return [
            BenchPath(
                name="peer torch",
                kind="peer",
                label="PyTorch eager (model.forward at T=1)",
                backend="torch",
                precision="float",
                streams=1,
                open=_opener("torch", make_model, bundle, x),
            ),
            BenchPath(
                name="peer onnxruntime(torch.onnx)",
                kind="peer",
                backend="onnxruntime",
                label="onnxruntime on torch.onnx.export's file",
                precision="float",
                streams=1,
                open=_opener("onnx", make_model, bundle, x),
            ),
        ]

    return paths


def _opener(kind: str, make_model, bundle: Bundle, x: np.ndarray) -> Callable[[], Opened]:
    def open_() -> Opened:
        import warnings

        from rnnedge.boards.peers import eager as peers

        with warnings.catch_warnings():  # torch.onnx's advice on batch sizes is noise here
            warnings.simplefilter("ignore")
            fn = peers.torch_peer if kind == "torch" else peers.onnx_peer
            p = fn(make_model, bundle, x)
        return Opened(
            call=p.call, load_ms=p.load_ms, prepare_ms=p.prepare_ms, file_bytes=p.file_bytes
        )

    return open_
