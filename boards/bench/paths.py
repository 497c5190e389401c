"""The paths `rnnedge bench` times: rnnedge on each backend x precision x stream count, raw
interpreter calls on the same files, and the PyTorch peers (made by boards/peers/bench_paths.py
and handed in: this side runs on a board and never imports torch's code). Each path opens
lazily, so load time is measured and a missing backend only skips that path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnedge.boards.bench.config import BenchConfig
from rnnedge.boards.bench.latency import raw_call
from rnnedge.errors import BackendError, InputError
from rnnedge.runtime import available_backends, load
from rnnedge.runtime.backends import BACKENDS, MODEL_FILE_KIND
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.inputs import sample_input
from rnnedge.runtime.model import Model


@dataclass(frozen=True, kw_only=True)
class BenchPath:
    """One thing to time: a name, how to open it, and what it is."""

    name: str
    kind: str  # "rnnedge" | "peer"
    label: str
    backend: str
    precision: str
    streams: int
    open: Callable[[], Opened]


@dataclass(frozen=True, kw_only=True)
class Opened:
    call: Callable[[], object]
    load_ms: float
    prepare_ms: float | None = None
    file_bytes: int | None = None


# (bundle, step input) -> the PyTorch peers' paths, for the bundle's model
PeerPaths = Callable[[Bundle, np.ndarray], list[BenchPath]]


def step_input(bundle: Bundle) -> np.ndarray:
    """A fixed, seeded input step: the same every call, not zeros (no special cases)."""
    spec = bundle.manifest.step_input
    if spec.dtype != "float32":  # token ids: seeded ids that index the embedding table
        return sample_input(bundle.graph, spec, np.random.default_rng(0))
    return np.random.default_rng(0).uniform(-1, 1, spec.shape).astype(np.float32)


def stepper(model: Model, n: int, x: np.ndarray, checked: bool) -> Callable[[], object]:
    """One call stepping n streams: n == 1 is Stream.step; n > 1 is Model.streams(n), ONE
    batched call, fed every stream's input stacked along the step input's batch axis."""
    if n == 1:
        stream = model.stream(checked=checked)
        return lambda: stream.step(x)
    many = model.streams(n, checked=checked)
    axis = getattr(model.step_input, "batch_axis", None)
    if axis is None:
        raise BackendError(f"{n} streams: the step input has no batch axis")
    xs = np.ascontiguousarray(np.concatenate([x] * n, axis=axis))
    return lambda: many.step(xs)


def model_file_bytes(bundle: Bundle, backend: str, precision: str) -> int:
    """Bytes a backend loads: its model file, or graph.json + weights.npz for numpy."""
    kind = MODEL_FILE_KIND.get(backend)  # numpy runs the Graph itself
    if kind is None:
        quant = len(bundle.files.get("quant.json", b"")) if precision != "float" else 0
        return len(bundle.files["graph.json"]) + len(bundle.files["weights.npz"]) + quant
    return len(bundle.model_bytes(kind, precision))


def _rnnedge_path(cfg: BenchConfig, backend: str, precision: str, n: int, x) -> BenchPath:
    def open_() -> Opened:
        t0 = time.perf_counter()
        model = load(cfg.bundle, backend=backend, precision=precision)
        load_ms = (time.perf_counter() - t0) * 1e3
        size = model_file_bytes(model.bundle, backend, precision)
        return Opened(call=stepper(model, n, x, cfg.checked), load_ms=load_ms, file_bytes=size)

    name = f"rnnedge {backend}/{precision}" + (f" x{n}" if n > 1 else "")
    label = f"rnnedge Stream.step on {backend}" + ("" if cfg.checked else " (unchecked)")
    return BenchPath(
        name=name,
        kind="rnnedge",
        label=label,
        backend=backend,
        precision=precision,
        streams=n,
        open=open_,
    )


def _raw_path(cfg: BenchConfig, backend: str, precision: str, x) -> BenchPath:
    def open_() -> Opened:
        t0 = time.perf_counter()
        model = load(cfg.bundle, backend=backend, precision=precision)
        load_ms = (time.perf_counter() - t0) * 1e3
        size = model_file_bytes(model.bundle, backend, precision)
        return Opened(call=raw_call(model, x), load_ms=load_ms, file_bytes=size)

    what = {"litert": "LiteRT set_tensor+invoke+get_tensor", "onnxruntime": "session.run"}
    return BenchPath(
        name=f"raw {backend}/{precision}",
        kind="peer",
        backend=backend,
        precision=precision,
        label=f"raw {what[backend]} on our {MODEL_FILE_KIND[backend]} file",
        streams=1,
        open=open_,
    )


def plan(
    cfg: BenchConfig, bundle: Bundle, x: np.ndarray, peer_paths: PeerPaths | None = None
) -> tuple[list[BenchPath], list[dict]]:
    """The paths to time, in run order, and the combinations skipped with the reason."""
    import importlib.util

    have = {(m.backend, m.precision) for m in bundle.manifest.models}
    precisions_in_bundle = tuple(dict.fromkeys(m.precision for m in bundle.manifest.models))
    precisions = cfg.precisions or precisions_in_bundle
    backends = cfg.backends or tuple(available_backends())
    paths, raws, skipped = [], [], []
    for precision in precisions:
        for backend in backends:
            if backend not in BACKENDS:
                raise InputError(f"bench: unknown backend {backend!r}")
            file = MODEL_FILE_KIND.get(backend)
            # numpy runs the Graph (plus the bundle's quant plan) for any precision the bundle
            # has; whether it can is for the backend to say when it loads
            listed = (file, precision) in have if file else precision in precisions_in_bundle
            if not listed:
                what = f"{file} {precision} model" if file else f"{precision} model at all"
                skipped.append(
                    {
                        "name": f"rnnedge {backend}/{precision}",
                        "reason": f"the bundle has no {what}",
                    }
                )
                continue
            paths += [_rnnedge_path(cfg, backend, precision, n, x) for n in cfg.streams]
            if cfg.peers and file:
                raws.append(_raw_path(cfg, backend, precision, x))
    if not cfg.peers:
        return paths, skipped
    if cfg.model is None:
        skipped.append(
            {
                "name": "peer torch, peer onnxruntime(torch.onnx)",
                "reason": "need the PyTorch model: pass --model (as for rnnedge export)",
            }
        )
        return paths + raws, skipped
    if importlib.util.find_spec("torch") is None:
        skipped.append({"name": "peer torch", "reason": "torch is not installed"})
        return paths + raws, skipped
    if peer_paths is None:
        skipped.append(
            {
                "name": "peer torch, peer onnxruntime(torch.onnx)",
                "reason": "no peer paths were handed in (rnnedge bench builds them from --model)",
            }
        )
        return paths + raws, skipped
    return paths + raws + peer_paths(bundle, x), skipped
