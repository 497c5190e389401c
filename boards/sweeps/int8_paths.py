"""Every path `make bench-int8` (boards/sweeps/int8.py) times for one model: rnnedge on each
file backend x precision x call, and the int8 peers (boards/peers/int8.py), each opened once;
a path that cannot open is a row that says why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rnnedge.boards.sweeps.int8_config import (
    CALLS,
    FEATURES,
    PEER_TAG,
    PRECISIONS,
    Int8BenchConfig,
    Row,
    Say,
    Stepper,
    calibration,
    make_model,
)
from rnnedge.errors import RnnedgeError
from rnnedge.runtime.backends import MODEL_FILE_KIND


@dataclass(frozen=True, kw_only=True)
class Int8Path:
    row: Row
    make: Callable[[], Stepper]


def export_bundles(kind: str, hidden: int, cfg: Int8BenchConfig, out: Path, say: Say):
    """{precision: bundle path or the reason it cannot be built}; float and int8-dynamic
    come from one int8-dynamic bundle, int8 from its own."""
    import torch

    from rnnedge.export.pipeline import export_bundle

    calib = [s.reshape(s.shape[0], 1, 1, FEATURES) for s in calibration(cfg)]
    example = torch.zeros(1, 1, FEATURES)
    found: dict[str, Path | str] = {}
    for quantize, precisions in (("int8-dynamic", ("float", "int8-dynamic")), ("int8", ("int8",))):
        say(f"[{kind} h={hidden}] exporting rnnedge bundle, quantize={quantize}")
        try:
            path = export_bundle(
                make_model(kind, hidden),
                example,
                out / f"{kind}{hidden}-{quantize}.rnnedge",
                quantize=quantize,
                calibration=calib,
            )
        except RnnedgeError as e:
            path = f"not available: {e}"
        found.update({p: path for p in precisions})
    return found


def rnnedge_paths(kind: str, hidden: int, cfg: Int8BenchConfig, bundles: dict) -> list[Int8Path]:
    paths = []
    for backend in cfg.backends:
        for precision in PRECISIONS:
            base = dict(kind=kind, hidden=hidden, who="rnnedge", backend=backend)
            base |= dict(precision=precision)
            rows = {
                c: Row(**base, call=c, name=f"rnnedge {backend} {precision}" + _SUFFIX[c])
                for c in CALLS
            }
            model = _open(bundles[precision], backend, precision)
            if isinstance(model, str):
                paths += [
                    Int8Path(row=replace(r, unavailable=model), make=_none) for r in rows.values()
                ]
                continue
            info = _file_info(model, backend, precision)  # one open serves both calls
            for c, r in rows.items():
                paths.append(Int8Path(row=replace(r, **info), make=_stepper(model, backend, c)))
    return paths


_SUFFIX = {"stream": "", "raw": " raw"}


def _open(where: Path | str, backend: str, precision: str):
    """The loaded model, or why there is none (`where` is already a reason when the exporter
    could not build the precision)."""
    from rnnedge.runtime import load

    if isinstance(where, str):
        return where
    try:
        return load(where, backend=backend, precision=precision)
    except RnnedgeError as e:
        return f"not available: {e}"


def _stepper(model, backend: str, call: str) -> Callable[[], Stepper]:
    from rnnedge.boards.peers.int8 import litert_stepper, ort_stepper

    if call == "stream":
        return lambda: model.stream().step
    raw = litert_stepper if backend == "litert" else ort_stepper
    data = model.bundle.model_bytes(MODEL_FILE_KIND[backend], model.precision)
    return lambda: raw(data)


def _file_info(model, backend: str, precision: str) -> dict:
    from rnnedge.boards.peers.int8 import onnx_ops, tflite_ops

    fmt = MODEL_FILE_KIND[backend]
    name = next(
        m.path
        for m in model.bundle.manifest.models
        if m.precision == precision and m.backend == fmt
    )
    data = model.bundle.files[name]
    return {"file_bytes": len(data), "ops": (tflite_ops if fmt == "tflite" else onnx_ops)(data)}


def _none() -> Stepper:
    raise AssertionError("an unavailable path is never stepped")


def peer_paths(kind: str, hidden: int, cfg: Int8BenchConfig, bundle, say: Say) -> list[Int8Path]:
    from rnnedge.boards.peers import int8 as int8_peers
    from rnnedge.runtime import read_bundle

    calib, paths = calibration(cfg), []
    base = dict(kind=kind, hidden=hidden, who=PEER_TAG)
    say(f"[{kind} h={hidden}] building onnxruntime int8 peers (torch.onnx.export + quantize)")
    try:
        peers = int8_peers.ort_peers(lambda: make_model(kind, hidden), read_bundle(bundle), calib)
    except Exception as e:  # torch.onnx and the quantizer raise assorted errors: a row says why
        row = Row(**base, name="ort quantize_*", backend="onnxruntime", precision="int8")
        return [
            Int8Path(row=Row(**asdict(row) | {"unavailable": f"not available: {e}"}), make=_none)
        ]
    why = int8_peers.has_tensorflow(cfg.tf_python)
    if why is None:
        target = int8_peers.tflite_job(make_model(kind, hidden), calib, cfg.work_dir / "tflite")
        try:
            int8_peers.build_tflite(cfg.tf_python, target.parent, say)
            peers.append(int8_peers.litert_peer(target))
        except RnnedgeError as e:
            why = f"not available: {e}"
    else:
        why = f"not available: {why}"
    for p in peers:
        precision = "int8-dynamic" if "dynamic" in p.name else "int8"
        row = Row(**base, name=p.name, backend=p.backend, precision=precision)
        row = Row(
            **asdict(row)
            | {"file_bytes": p.file_bytes, "ops": p.ops, "weights_float": p.weights_float}
        )
        paths.append(Int8Path(row=row, make=p.make))
    if why is not None:
        row = Row(**base, name="litert TF-converter int8", backend="litert", precision="int8")
        paths.append(Int8Path(row=Row(**asdict(row) | {"unavailable": why}), make=_none))
    return paths
