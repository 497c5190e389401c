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

# (peer, path name, label, backend it runs on), in run order
PEERS = (
    ("torch", "peer torch", "PyTorch eager (model.forward at T=1)", "torch"),
    (
        "onnx",
        "peer onnxruntime(torch.onnx)",
        "onnxruntime on torch.onnx.export's file",
        "onnxruntime",
    ),
)


def torch_peer_paths(model_spec: str, weights: str | None = None) -> PeerPaths:
    """The peers' paths for the model `model_spec` (with `weights`), given the bundle and the
    step input the bench times."""

    def make_model():
        from rnnedge.export.model_spec import load_model

        return load_model(model_spec, weights)

    def paths(bundle: Bundle, x: np.ndarray) -> list[BenchPath]:
        return [
            BenchPath(
                name=name,
                kind="peer",
                label=label,
                backend=backend,
                precision="float",
                streams=1,
                open=_opener(peer, make_model, bundle, x),
            )
            for peer, name, label, backend in PEERS
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
