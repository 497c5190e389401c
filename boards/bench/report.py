"""What `rnnedge bench` produces from a run: the text tables, the --json file, the line
appended to the board's results file, and the --plot PNG.

Results files: RESULTS_DIR/<board>.jsonl, one JSON document (bench_schema.json) per line.
One file per board, because numbers from different boards must never be averaged together;
in the working tree (default `results/`, relative to where bench runs) rather than a hidden
per-user directory, because a board's history is meant to be looked at, diffed and committed
next to the code it measured; JSON Lines, because an append of one line never disturbs the
earlier runs, even if a run dies half-way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from rnnedge.boards.bench.config import BenchConfig
from rnnedge.boards.bench.offline import bench_offline
from rnnedge.boards.bench.paths import PeerPaths
from rnnedge.boards.bench.run import BenchResult, Progress, run_bench
from rnnedge.errors import InputError
from rnnedge.runtime.bundle import read_bundle

RESULTS_DIR = Path("results")


@dataclass(frozen=True, kw_only=True)
class Outputs:
    json_path: str | None = None
    results_dir: str | None = str(RESULTS_DIR)  # None: do not append
    plot_path: str | None = None


def bench(
    cfg: BenchConfig,
    out: Outputs,
    progress: Progress | None = None,
    peer_paths: PeerPaths | None = None,
) -> str:
    """Runs the benchmark (peer_paths: see run_bench), writes every output asked for, returns
    the report text. An offline bundle gets its own per-sequence report (offline.py)."""
    if read_bundle(cfg.bundle).manifest.stages:
        return bench_offline(cfg, progress=None)
    if out.plot_path:
        from rnnedge.boards.bench.plot import check_plotting

        check_plotting()  # fail before a minute of measuring, not after
    result = run_bench(cfg, progress, peer_paths)
    written = []
    if out.json_path:
        write_json(result.doc, Path(out.json_path))
        written.append(f"wrote {out.json_path}")
    if out.results_dir:
        written.append(f"appended to {append_result(result.doc, Path(out.results_dir))}")
    if out.plot_path:
        from rnnedge.boards.bench.plot import plot_cdf

        plot_cdf(result, Path(out.plot_path))
        written.append(f"wrote {out.plot_path}")
    return "\n".join([format_report(result), *written])


def write_json(doc: dict, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        raise InputError(f"--json {path}: cannot write ({e.strerror})") from e


def append_result(doc: dict, results_dir: Path) -> Path:
    path = results_dir / f"{doc['board']['name']}.jsonl"
    line = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        # one write() on an O_APPEND descriptor: concurrent runs interleave whole lines
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as e:
        raise InputError(f"results file {path}: cannot append ({e.strerror})") from e
    return path


def _num(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def latency_table(runs: list[dict]) -> list[str]:
    cols = ("p50", "p90", "p99", "p999", "mean", "std", "min", "max")
    head = "{:34s} {:12s} {:>6s} " + " {:>7s}" * len(cols) + "  {:>8s}"
    lines = [head.format("path", "mode", "steps", *cols, "vs best")]
    for r in runs:
        lat = r["latency_us"]
        ratio = "-" if r["ratio_to_best"] is None else f"{r['ratio_to_best']:.2f}x"
        lines.append(
            f"{r['name']:34s} {r['mode']:12s} {lat['steps']:6d} "
            + " ".join(f"{_num(lat[c]):>7s}" for c in cols)
            + f"  {ratio:>8s}"
        )
    return lines


def resource_table(runs: list[dict]) -> list[str]:
    head = "{:34s} {:>9s} {:>11s} {:>14s} {:>8s} {:>9s} {:>10s}"
    lines = [
        head.format(
            "path", "load ms", "prepare ms", "first step us", "RSS MiB", "peak MiB", "file KiB"
        )
    ]
    seen = set()
    for r in runs:
        if r["name"] in seen:
            continue
        seen.add(r["name"])
        size = None if r["file_bytes"] is None else r["file_bytes"] / 1024
        lines.append(
            f"{r['name']:34s} {r['load_ms']:9.1f} {_num(r['prepare_ms']):>11s} "
            f"{r['first_step_us']:14.1f} {_num(r['rss_mib']):>8s} {r['peak_rss_mib']:9.1f} "
            f"{_num(size):>10s}"
        )
    return lines


def format_report(result: BenchResult) -> str:
    d = result.doc
    m, cfg = d["machine"], d["config"]
    temp = m["before"]["temperature_c"], m["after"]["temperature_c"]
    lines = [
        f"board {d['board']['name']} ({d['board']['detected_from']}); CPU {m['cpu_model']} "
        f"at {_num(m['cpu_mhz'], '.0f')} MHz; {m['system']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in d["versions"].items() if v),
        f"bundle {d['bundle']['path']} (manifest sha256 {d['bundle']['manifest_sha256'][:12]})",
    ]
    if temp != (None, None) or m["before"]["throttled"] is not None:
        lines.append(
            f"temperature {_num(temp[0])} -> {_num(temp[1])} C; throttled "
            f"{m['before']['throttled']} -> {m['after']['throttled']}"
        )
    lines += [
        "",
        f"latency per call, microseconds, one thread, state fed back, {cfg['rounds']} interleaved "
        f"rounds; paced = one call every {cfg['hop_ms']:g} ms; vs best = p50 over rnnedge's "
        "best p50 in the same mode:",
        *latency_table(d["runs"]),
        "",
        *resource_table(d["runs"]),
        "(RSS: the whole process after the path opened and ran its first step; peak RSS only "
        "grows, and rnnedge paths open before the torch peers)",
    ]
    for s in d["skipped"]:
        lines.append(f"skipped {s['name']}: {s['reason']}")
    for e in d["estimates"]:
        lines.append(
            f"ESTIMATE (cost model, {d['board']['profile']}): {e['precision']} floor "
            f"{e['floor_us']:.2f} us, {e['bound']}-bound, weights in {e['resident_in']}"
        )
    return "\n".join(lines)
