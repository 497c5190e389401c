"""The paths `rnnedge bench` times: rnnedge on each backend x precision x stream count, raw
interpreter calls on the same files, and the PyTorch peers. Each path opens lazily, so load
time is measured and a missing backend only skips that path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rnnedge.boards.bench.latency import raw_call
from rnnedge.errors import BackendError, InputError
from rnnedge.runtime import available_backends, load
from rnnedge.runtime.backends import MODEL_FILE_KIND
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.model import Model

if TYPE_CHECKING:
    from rnnedge.boards.bench.run import BenchConfig

# which model file each backend runs; numpy runs the Graph itself
BACKEND_FILES = {**MODEL_FILE_KIND, "numpy": None}


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


def step_input(bundle: Bundle) -> np.ndarray:
    """A fixed, seeded input step: the same every call, not zeros (no special cases)."""
    shape = bundle.manifest.step_input.shape
    return np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)


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
    kind = BACKEND_FILES[backend]
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
        label=f"raw {what[backend]} on our {BACKEND_FILES[backend]} file",
        streams=1,
        open=open_,
    )


def _torch_paths(cfg: BenchConfig, bundle: Bundle, x) -> list[BenchPath]:
    def make_model():
        from rnnedge.export.model_spec import load_model

        return load_model(cfg.model, cfg.weights)

    def opener(kind: str) -> Callable[[], Opened]:
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

    return [
        BenchPath(
            name="peer torch",
            kind="peer",
            label="PyTorch eager (model.forward at T=1)",
            backend="torch",
            precision="float",
            streams=1,
            open=opener("torch"),
        ),
        BenchPath(
            name="peer onnxruntime(torch.onnx)",
            kind="peer",
            backend="onnxruntime",
            label="onnxruntime on torch.onnx.export's file",
            precision="float",
            streams=1,
            open=opener("onnx"),
        ),
    ]


def plan(cfg: BenchConfig, bundle: Bundle, x: np.ndarray) -> tuple[list[BenchPath], list[dict]]:
    """The paths to time, in run order, and the combinations skipped with the reason."""
    import importlib.util

    have = {(m.backend, m.precision) for m in bundle.manifest.models}
    precisions_in_bundle = tuple(dict.fromkeys(m.precision for m in bundle.manifest.models))
    precisions = cfg.precisions or precisions_in_bundle
    backends = cfg.backends or tuple(available_backends())
    paths, raws, skipped = [], [], []
    for precision in precisions:
        for backend in backends:
            if backend not in BACKEND_FILES:
                raise InputError(f"bench: unknown backend {backend!r}")
            file = BACKEND_FILES[backend]
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
    return paths + raws + _torch_paths(cfg, bundle, x), skipped
