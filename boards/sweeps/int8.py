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

What is measured is in int8_config.py, how each path opens in int8_paths.py, the table in
int8_report.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rnnedge.boards.bench import sysinfo
from rnnedge.boards.bench.latency import LatencyStats, time_calls, warm_up
from rnnedge.boards.sweeps.int8_config import (
    FEATURES,
    FILE_BACKENDS,
    HIDDEN,
    KINDS,
    PEER_TAG,
    Int8BenchConfig,
    Row,
    Say,
    make_model,
    sequences,
)
from rnnedge.boards.sweeps.int8_paths import Int8Path, export_bundles, peer_paths, rnnedge_paths
from rnnedge.errors import RnnedgeError

# --- measuring -------------------------------------------------------------------------------


def _time(paths: list[Int8Path], cfg: Int8BenchConfig, x: np.ndarray, say: Say, tag: str):
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


def _errors(paths: list[Int8Path], make_torch, seq: np.ndarray) -> dict[int, float]:
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
        built = export_bundles(kind, hidden, cfg, Path(tmp), say)
        paths = rnnedge_paths(kind, hidden, cfg, built)
        if cfg.peers:
            paths += peer_paths(kind, hidden, cfg, built["float"], say)
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
    p.add_argument("--backends", nargs="+", default=list(FILE_BACKENDS), choices=FILE_BACKENDS)
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
