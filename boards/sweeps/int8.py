"""Per-step latency of rnnedge int8 against rnnedge float and the peers' int8 (issue 3).

    python -m rnnedge.boards.sweeps.int8 [--kinds gru lstm] [--hidden 64 128 256 512]
        [--steps 1500] [--rounds 3] [--tf-python PY] [--no-peers]
        [--results DIR | --no-results] [--json FILE]

Model: GRU or LSTM (40 -> H) + Linear(H -> 10), batch 1, one time step per call, state fed
back (step_bench's setting). For every kind x hidden size:

- rnnedge: litert and onnxruntime x float, int8-dynamic and int8 (full integer), each twice:
  through a Stream (call "stream": inputs checked, as deployed) and through the peers' own
  harness (call "raw": IOBinding / set_tensor + invoke), so file meets file on equal terms.
  A precision the exporter cannot build is a row "not available: <reason>".
- peers (boards/peers/int8.py): onnxruntime quantize_dynamic / quantize_static on
  torch.onnx.export's file (cell and op form), and LiteRT on TensorFlow's full-int8 file
  when a Python with tensorflow is given (--tf-python; see docs/boards.md). A peer file
  whose largest weight stayed float (onnxruntime cannot quantize the GRU op) is shown but
  not counted as an int8 peer.

Method: one thread; every path of one model opens first, then `rounds` interleaved rounds
(each path warmed up by count, then `steps` calls timed one by one), samples pooled over the
rounds, so drift on a shared machine hits all paths alike. Reported: p50/p90/p99 (us), the
file size, the p50 ratio to rnnedge float on the same backend and call, and to the best peer
int8 of the same model (on the same backend, and on any), and the largest |y - PyTorch float|
over a held-out sequence with the state carried (so a fast but wrong file shows). Needs torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rnnedge.boards.bench import sysinfo
from rnnedge.boards.bench.latency import LatencyStats, time_calls, warm_up
from rnnedge.errors import RnnedgeError

FEATURES, CLASSES = 40, 10
KINDS = ("gru", "lstm")
HIDDEN = (64, 128, 256, 512)
BACKENDS = ("litert", "onnxruntime")
PRECISIONS = ("float", "int8-dynamic", "int8")
PEER_TAG = "peer"
CALLS = ("stream", "raw")

Say = Callable[[str], None]
Stepper = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class Int8BenchConfig:
    kinds: tuple[str, ...] = KINDS
    hidden: tuple[int, ...] = HIDDEN
    backends: tuple[str, ...] = BACKENDS
    steps: int = 1500  # timed calls per path per round
    rounds: int = 3
    warmup: int = 200  # untimed calls per path before each round
    calib_sequences: int = 4
    calib_steps: int = 100
    eval_steps: int = 200
    peers: bool = True
    tf_python: str | None = None  # a Python with tensorflow, for the LiteRT int8 peer
    work_dir: Path = Path("build/int8_bench")  # bundles (temporary) and the .tflite cache

    def __post_init__(self) -> None:
        from rnnedge.errors import InputError

        if any(k not in KINDS for k in self.kinds) or not self.kinds:
            raise InputError(f"int8 bench: kinds must be among {KINDS}, got {self.kinds}")
        for name in ("steps", "rounds", "calib_sequences", "calib_steps", "eval_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"int8 bench: {name} must be >= 1")
        if not self.hidden or min(self.hidden) < 1:
            raise InputError(f"int8 bench: hidden sizes must be positive, got {self.hidden}")


@dataclass(frozen=True, kw_only=True)
class Row:
    kind: str
    hidden: int
    who: str  # "rnnedge" | "peer"
    name: str
    backend: str
    precision: str  # float | int8-dynamic | int8 (peers: what the tool calls it)
    call: str = "raw"  # "stream" (rnnedge.Stream.step) or "raw" (the peers' harness)
    weights_float: bool = False  # a peer that left its recurrent weights float
    file_bytes: int | None = None
    ops: dict[str, int] = field(default_factory=dict)
    latency_us: dict[str, float | None] | None = None
    max_abs_err: float | None = None  # of y against PyTorch float over eval_steps steps
    unavailable: str | None = None
    vs_float: float | None = None  # p50 / rnnedge float p50 on the same backend and call
    vs_best_peer: float | None = None  # p50 / best int8 peer p50 on the same backend
    vs_any_peer: float | None = None  # p50 / best int8 peer p50 on any backend


def make_model(kind: str, hidden: int):
    import torch
    from torch import nn

    class Kws(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rnn = nn.GRU if kind == "gru" else nn.LSTM
            self.rnn = rnn(FEATURES, hidden, batch_first=True)
            self.head = nn.Linear(hidden, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(x)[0])

    torch.manual_seed(hidden + (0 if kind == "gru" else 1))
    return Kws().eval()


def sequences(seed: int, count: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((steps, 1, 1, FEATURES)).astype(np.float32) for _ in range(count)]


# --- opening every path of one model ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Path:
    row: Row
    make: Callable[[], Stepper]


def _bundles(kind: str, hidden: int, cfg: Int8BenchConfig, out: Path, say: Say):
    """{precision: bundle path or the reason it cannot be built}; float and int8-dynamic
    come from one int8-dynamic bundle, int8 from its own."""
    import torch

    from rnnedge.export.pipeline import export_bundle

    calib = [s.reshape(s.shape[0], 1, 1, FEATURES) for s in _calib(cfg)]
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


def _calib(cfg: Int8BenchConfig) -> list[np.ndarray]:
    return sequences(1, cfg.calib_sequences, cfg.calib_steps)


def _rnnedge_paths(kind: str, hidden: int, cfg: Int8BenchConfig, bundles: dict) -> list[_Path]:
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
                    _Path(row=replace(r, unavailable=model), make=_none) for r in rows.values()
                ]
                continue
            info = _file_info(model, backend, precision)  # one open serves both calls
            for c, r in rows.items():
                paths.append(_Path(row=replace(r, **info), make=_stepper(model, backend, c)))
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
    fmt, raw = ("tflite", litert_stepper) if backend == "litert" else ("onnx", ort_stepper)
    data = model.bundle.model_bytes(fmt, model.precision)
    return lambda: raw(data)


def _file_info(model, backend: str, precision: str) -> dict:
    from rnnedge.boards.peers.int8 import onnx_ops, tflite_ops

    fmt = "tflite" if backend == "litert" else "onnx"
    name = next(
        m.path
        for m in model.bundle.manifest.models
        if m.precision == precision and m.backend == fmt
    )
    data = model.bundle.files[name]
    return {"file_bytes": len(data), "ops": (tflite_ops if fmt == "tflite" else onnx_ops)(data)}


def _none() -> Stepper:
    raise AssertionError("an unavailable path is never stepped")


def _peer_paths(kind: str, hidden: int, cfg: Int8BenchConfig, bundle, say: Say) -> list[_Path]:
    from rnnedge.boards.peers import int8 as int8_peers
    from rnnedge.runtime import read_bundle

    calib, paths = _calib(cfg), []
    base = dict(kind=kind, hidden=hidden, who=PEER_TAG)
    say(f"[{kind} h={hidden}] building onnxruntime int8 peers (torch.onnx.export + quantize)")
    try:
        peers = int8_peers.ort_peers(lambda: make_model(kind, hidden), read_bundle(bundle), calib)
    except Exception as e:  # torch.onnx and the quantizer raise assorted errors: a row says why
        row = Row(**base, name="ort quantize_*", backend="onnxruntime", precision="int8")
        return [_Path(row=Row(**asdict(row) | {"unavailable": f"not available: {e}"}), make=_none)]
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
        paths.append(_Path(row=row, make=p.make))
    if why is not None:
        row = Row(**base, name="litert TF-converter int8", backend="litert", precision="int8")
        paths.append(_Path(row=Row(**asdict(row) | {"unavailable": why}), make=_none))
    return paths


# --- measuring -------------------------------------------------------------------------------


def _time(paths: list[_Path], cfg: Int8BenchConfig, x: np.ndarray, say: Say, tag: str):
    live = [p for p in paths if p.row.unavailable is None]
    calls = []
    for p in live:
        step = p.make()
        calls.append(lambda s=step: s(x))
    samples: list[list[np.ndarray]] = [[] for _ in live]
    for r in range(cfg.rounds):
        say(f"{tag} timing {len(live)} paths, round {r + 1}/{cfg.rounds}")
        for i, call in enumerate(calls):  # interleaved: every path sees the same drift
            warm_up(call, cfg.warmup, 0.0)
            samples[i].append(time_calls(call, steps=cfg.steps, seconds=0.0))
    return {id(p): LatencyStats.of(np.concatenate(s)) for p, s in zip(live, samples)}


def _errors(paths: list[_Path], make_torch, seq: np.ndarray) -> dict[int, float]:
    """Largest |y - PyTorch float| over the sequence, each path from its initial state."""
    import torch

    with torch.inference_mode():
        ref = make_torch()(torch.from_numpy(seq.reshape(1, -1, FEATURES))).numpy()[0]
    out = {}
    for p in paths:
        if p.row.unavailable is None:
            step = p.make()
            ys = np.stack([np.asarray(step(x)).reshape(-1) for x in seq])
            out[id(p)] = float(np.abs(ys - ref).max())
    return out


def bench_model(kind: str, hidden: int, cfg: Int8BenchConfig, say: Say) -> list[Row]:
    tag = f"[{kind} h={hidden}]"
    with tempfile.TemporaryDirectory() as tmp:
        bundles = _bundles(kind, hidden, cfg, Path(tmp), say)
        paths = _rnnedge_paths(kind, hidden, cfg, bundles)
        if cfg.peers:
            paths += _peer_paths(kind, hidden, cfg, bundles["float"], say)
        x = sequences(7, 1, 1)[0][0]
        stats = _time(paths, cfg, x, say, tag)
        errs = _errors(paths, lambda: make_model(kind, hidden), sequences(3, 1, cfg.eval_steps)[0])
    rows = []
    for p in paths:
        s = stats.get(id(p))
        latency = None if s is None else s.reported()
        rows.append(Row(**asdict(p.row) | {"latency_us": latency, "max_abs_err": errs.get(id(p))}))
    return _ratios(rows)


def _p50(row: Row) -> float | None:
    return None if row.latency_us is None else row.latency_us["p50"]


def _ratios(rows: list[Row]) -> list[Row]:
    floats = {
        (r.backend, r.call): _p50(r) for r in rows if r.who == "rnnedge" and r.precision == "float"
    }
    peers = [r for r in rows if r.who == PEER_TAG and _p50(r) is not None and not r.weights_float]
    best_any = min((_p50(r) for r in peers), default=None)
    out = []
    for r in rows:
        same = min((_p50(q) for q in peers if q.backend == r.backend), default=None)
        p50 = _p50(r)
        ratios = {
            "vs_float": floats.get((r.backend, r.call)),
            "vs_best_peer": same,
            "vs_any_peer": best_any,
        }
        ratios = {k: p50 / v if p50 is not None and v else None for k, v in ratios.items()}
        out.append(Row(**asdict(r) | ratios))
    return out


def run(cfg: Int8BenchConfig, say: Say) -> dict:
    """Every kind x hidden size; returns the result document (format rnnedge.int8-bench)."""
    from rnnedge.boards.profiles import detect_this_machine

    created = datetime.now(UTC).isoformat(timespec="seconds")
    board, detected = detect_this_machine()
    rows: list[Row] = []
    for kind in cfg.kinds:
        for hidden in cfg.hidden:
            rows += bench_model(kind, hidden, cfg, say)
    config = asdict(cfg) | {"work_dir": str(cfg.work_dir), "threads": 1}
    return {
        "format": "rnnedge.int8-bench",
        "version": 1,
        "created": created,
        "board": {"name": board, "detected_from": detected},
        "machine": sysinfo.machine(),
        "versions": sysinfo.versions(),
        "config": config,
        "rows": [asdict(r) for r in rows],
    }


def main(argv: list[str] | None = None) -> None:
    import os

    from rnnedge.boards.bench.report import append_result
    from rnnedge.boards.sweeps.int8_report import format_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--hidden", nargs="+", type=int, default=list(HIDDEN))
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--steps", type=int, default=1500, help="timed calls per path per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--tf-python", default=os.environ.get("RNNEDGE_TF_PYTHON") or None)
    p.add_argument("--results", default="results", help="appends RESULTS/int8-bench/<board>.jsonl")
    p.add_argument("--no-results", action="store_true")
    p.add_argument("--json", help="also write the result document to this file")
    a = p.parse_args(argv)
    cfg = Int8BenchConfig(
        kinds=tuple(a.kinds),
        hidden=tuple(a.hidden),
        backends=tuple(a.backends),
        steps=a.steps,
        rounds=a.rounds,
        peers=not a.no_peers,
        tf_python=a.tf_python,
    )
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        doc = run(cfg, say)
    except RnnedgeError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from e
    print(format_table(doc))
    if a.json:
        Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    if not a.no_results:
        say(f"appended to {append_result(doc, Path(a.results) / 'int8-bench')}")


if __name__ == "__main__":
    main()
