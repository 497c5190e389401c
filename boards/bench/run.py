"""`rnnedge bench`: per-step latency, load time, memory and file sizes of a bundle on every
backend x precision x {back-to-back, paced} x streams, and of the peers, in one run.

Method (after TFLite's benchmark_model and onnxruntime_perf_test): one thread; warm-up by
count AND seconds; then at least `steps` calls AND `seconds`, each call timed alone with
perf_counter_ns, state fed back from step to step. Paced mode starts a call every `hop_ms`
(a real stream) so caches go cold between calls; its warm-up runs back to back. Python's
garbage collector stays on, as in deployment.

On a shared or drifting machine the path timed first and the path timed last see different
conditions, so the timing is split into `rounds` interleaved rounds (every path once per
round) and each path's samples are pooled over the rounds. Paths open in plan order: rnnedge
first, the peers (which import torch) last, so the RSS recorded after opening an rnnedge path
excludes torch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from rnnedge.boards.bench import sysinfo
from rnnedge.boards.bench.config import MODES, TIMING_FIELDS, BenchConfig
from rnnedge.boards.bench.latency import LatencyStats, time_calls, warm_up
from rnnedge.boards.bench.paths import BenchPath, Opened, PeerPaths, plan, step_input
from rnnedge.boards.cost import board_floor, graph_cost
from rnnedge.boards.profiles import detect_this_machine, get_profile
from rnnedge.errors import RnnedgeError
from rnnedge.progress import TaskProgress as Progress
from rnnedge.runtime import read_bundle
from rnnedge.runtime.bundle import Bundle

__all__ = ["MODES", "BenchConfig", "BenchResult", "run_bench"]  # MODES, BenchConfig: from config.py


@dataclass(frozen=True, kw_only=True)
class BenchResult:
    doc: dict[str, Any]  # the --json document (see bench_schema.json)
    times_ns: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (name, mode)


def run_bench(
    cfg: BenchConfig, progress: Progress | None = None, peer_paths: PeerPaths | None = None
) -> BenchResult:
    """Runs every path of the plan; returns the result document and the raw timings.
    peer_paths makes the PyTorch peers' paths (boards/peers/bench_paths.py builds them from
    cfg.model; the CLI hands them in, since the board side never imports torch's code)."""
    say = progress or (lambda _d, _t, _w: None)
    bundle = read_bundle(cfg.bundle)
    board, detected = (cfg.board, "given with --board") if cfg.board else detect_this_machine()
    profile = get_profile(board)
    x = step_input(bundle)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    before = sysinfo.thermal()
    paths, skipped = plan(cfg, bundle, x, peer_paths)
    total = len(paths) * (1 + cfg.rounds * len(cfg.modes))
    done, opened = 0, []
    for p in paths:
        say(done, total, f"{p.name}: loading")
        done += 1
        try:
            o = p.open()
        except RnnedgeError as e:  # a backend, precision or stream count this bundle lacks
            skipped.append({"name": p.name, "reason": str(e)})
            done += cfg.rounds * len(cfg.modes)
            continue
        t0 = time.perf_counter_ns()
        o.call()
        first_us = (time.perf_counter_ns() - t0) / 1e3
        opened.append((p, o, {"first_step_us": first_us, **_memory()}))
    samples: dict[tuple[str, str], list[np.ndarray]] = {}
    for mode in cfg.modes:
        for r in range(cfg.rounds):
            for p, o, _ in opened:
                say(done, total, f"{p.name}: {mode}, round {r + 1}/{cfg.rounds}")
                t = _time_round(cfg, o.call, mode, first=r == 0)
                samples.setdefault((p.name, mode), []).append(t)
                done += 1
    say(total, total, "done")
    times = {k: np.concatenate(v) for k, v in samples.items()}
    runs = [
        _run_doc(cfg, p, o, mode, extra, times[(p.name, mode)])
        for mode in cfg.modes
        for p, o, extra in opened
    ]
    _add_ratios(runs)
    doc = {
        "format": "rnnedge.bench",
        "version": 1,
        "created": created,
        "board": {"name": profile.name, "detected_from": detected, "profile": profile.title},
        "bundle": _bundle_doc(bundle),
        "config": _config_doc(cfg),
        "machine": {**sysinfo.machine(), "before": before, "after": sysinfo.thermal()},
        "versions": sysinfo.versions(),
        "runs": runs,
        "skipped": skipped,
        "estimates": _estimates(bundle, profile),
    }
    return BenchResult(doc=doc, times_ns=times)


def _time_round(cfg: BenchConfig, call: Callable[[], object], mode: str, first: bool) -> np.ndarray:
    """One round of one path: its share of the steps and seconds, after a warm-up (by
    seconds only in the first round; by count in every round, since the other paths ran in
    between and evicted this one's weights)."""
    warm_up(call, cfg.warmup_steps, cfg.warmup_seconds if first else 0.0)
    if mode == "paced":
        steps, seconds, hop = cfg.paced_steps, cfg.paced_seconds, cfg.hop_ms / 1e3
    else:
        steps, seconds, hop = cfg.steps, cfg.seconds, 0.0
    return time_calls(call, steps=-(-steps // cfg.rounds), seconds=seconds / cfg.rounds, hop_s=hop)


def _memory() -> dict[str, float | None]:
    return {"rss_mib": sysinfo.rss_mib(), "peak_rss_mib": sysinfo.peak_rss_mib()}


def _run_doc(cfg, p: BenchPath, opened: Opened, mode: str, extra: dict, t: np.ndarray) -> dict:
    stats = LatencyStats.of(t)
    return {
        "name": p.name,
        "kind": p.kind,
        "label": p.label,
        "backend": p.backend,
        "precision": p.precision,
        "mode": mode,
        "hop_ms": cfg.hop_ms if mode == "paced" else None,
        "streams": p.streams,
        "load_ms": opened.load_ms,
        "prepare_ms": opened.prepare_ms,
        **extra,
        "file_bytes": opened.file_bytes,
        "latency_us": {"steps": stats.steps, "seconds": float(t.sum()) / 1e9, **stats.reported()},
        "ratio_to_best": None,
    }


def _add_ratios(runs: list[dict]) -> None:
    """Each run's p50 over the best rnnedge p50 in the same mode and stream count."""
    for r in runs:
        best = [
            o["latency_us"]["p50"]
            for o in runs
            if o["kind"] == "rnnedge" and (o["mode"], o["streams"]) == (r["mode"], r["streams"])
        ]
        r["ratio_to_best"] = r["latency_us"]["p50"] / min(best) if best else None


def _bundle_doc(bundle: Bundle) -> dict:
    manifest = (bundle.path / "manifest.json").read_bytes()
    sizes = {"manifest.json": len(manifest), **{k: len(v) for k, v in bundle.files.items()}}
    return {
        "path": str(bundle.path),
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "files": dict(sorted(sizes.items())),
    }


def _config_doc(cfg: BenchConfig) -> dict:
    keys = ("hop_ms", *TIMING_FIELDS, "checked", "peers", "model")
    return {
        "backends": list(cfg.backends),
        "precisions": list(cfg.precisions),
        "modes": list(cfg.modes),
        "streams": list(cfg.streams),
        "threads": 1,
        **{k: getattr(cfg, k) for k in keys},
    }


def _estimates(bundle: Bundle, profile) -> list[dict]:
    cost = graph_cost(bundle.graph)
    out = []
    for precision in dict.fromkeys(m.precision for m in bundle.manifest.models):
        f = board_floor(cost, profile, precision)
        out.append(
            {
                "precision": precision,
                "macs": cost.macs,
                "weight_bytes": f.weight_bytes,
                "resident_in": f.resident_in,
                "floor_us": f.floor_us,
                "bound": f.bound,
            }
        )
    return out
