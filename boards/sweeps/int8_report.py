"""The text report of `make bench-int8` (boards/sweeps/int8.py) from its result document:
one latency table, what each peer's file holds, and the issue's two goals checked."""

from __future__ import annotations

GOAL_HIDDEN = 256  # "never slower than rnnedge float on the same backend at hidden >= 256"
REASON_WIDTH = 90
NAME_WIDTH = 38


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _row_line(r: dict) -> str:
    name = r["name"] + (" *" if r.get("weights_float") else "")
    head = f"{r['kind']:4s} {r['hidden']:4d}  {name:{NAME_WIDTH}s} "
    if r["unavailable"]:
        reason = r["unavailable"].replace("\n", " ")
        if len(reason) > REASON_WIDTH:
            reason = reason[: REASON_WIDTH - 3] + "..."
        return head + reason
    lat = r["latency_us"]
    size = None if r["file_bytes"] is None else r["file_bytes"] / 1024
    return head + " ".join(
        [
            f"{_num(lat['p50'], '8.1f')}",
            f"{_num(lat['p90'], '8.1f')}",
            f"{_num(lat['p99'], '8.1f')}",
            f"{_num(size, '8.1f')}",
            f"{_num(r['vs_float'], '8.2f')}",
            f"{_num(r['vs_best_peer'], '8.2f')}",
            f"{_num(r['vs_any_peer'], '8.2f')}",
            f"{_num(r['max_abs_err'], '9.1e')}",
        ]
    )


def latency_table(rows: list[dict]) -> list[str]:
    cols = ["p50 us", "p90 us", "p99 us", "KB", "/float", "/peer", "/any", "|err|"]
    header = f"{'kind':4s} {'H':>4s}  {'path':{NAME_WIDTH}s} " + " ".join(f"{c:>8s}" for c in cols)
    lines = [header, "-" * len(header)]
    last = None
    for r in rows:
        if last is not None and (r["kind"], r["hidden"]) != last:
            lines.append("")
        last = (r["kind"], r["hidden"])
        lines.append(_row_line(r))
    return lines


def file_ops(rows: list[dict]) -> list[str]:
    """Op types of each model file, once per kind (they do not depend on the hidden size)."""
    lines, seen = ["what each file holds (op type count):"], set()
    for r in rows:
        key = (r["kind"], r["name"])
        if not r["ops"] or key in seen:
            continue
        seen.add(key)
        ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items()))
        lines.append(f"  {r['kind']:4s} {r['name']:{NAME_WIDTH}s} {ops}")
    return lines


def goals(rows: list[dict]) -> list[str]:
    """The issue's goals for rnnedge int8 (and int8-dynamic, for reference). A compares the
    deployed Stream calls; B compares files on the peers' own raw harness."""
    lines = [
        "goals (p50 ratios; 'MET' is one noisy run's verdict):",
        f"  A: rnnedge int8 p50 <= rnnedge float p50, same backend, Stream calls, "
        f"hidden >= {GOAL_HIDDEN}",
        "  B: rnnedge int8 p50 <= best int8 peer p50 of the same model, same backend, both raw "
        "calls, every hidden size (and, for reference, on any backend)",
    ]
    for precision in ("int8", "int8-dynamic"):
        mine = [r for r in rows if r["who"] == "rnnedge" and r["precision"] == precision]
        for r in (r for r in mine if r["call"] == "stream"):
            raw = next(
                q
                for q in mine
                if q["call"] == "raw"
                and (q["kind"], q["hidden"], q["backend"]) == (r["kind"], r["hidden"], r["backend"])
            )
            where = f"  {precision:12s} {r['kind']:4s} {r['hidden']:4d} {r['backend']:12s}"
            if r["unavailable"] or raw["unavailable"]:
                lines.append(f"{where} not measured (not available)")
                continue
            a = _verdict(r["vs_float"]) if r["hidden"] >= GOAL_HIDDEN else "n/a"
            b, any_ = _verdict(raw["vs_best_peer"]), _verdict(raw["vs_any_peer"])
            lines.append(f"{where} A: {a:14s} B: {b:14s} (any backend: {any_})")
    return lines


def _verdict(ratio: float | None) -> str:
    if ratio is None:
        return "no reference"
    return f"{ratio:5.2f} {'MET' if ratio <= 1.0 else 'NOT MET'}"


def format_table(doc: dict) -> str:
    rows = doc["rows"]
    m = doc["machine"]
    cfg = doc["config"]
    lines = [
        f"GRU/LSTM({40} -> H) + Linear(H -> 10), batch 1, one step per call, state fed back, "
        f"one thread; {cfg['rounds']} interleaved rounds x {cfg['steps']} calls per path",
        f"machine: {m.get('cpu_model') or m.get('machine') or '?'} (shared and noisy: compare "
        "ratios within one run)",
        "stream: through rnnedge.Stream (inputs checked, as deployed); raw: the peers' harness;",
        "/float: p50 over rnnedge float on the same backend and call; /peer, /any: p50 over "
        "the best int8 peer of the same model on the same backend, on any backend;",
        "* the peer's largest weight stayed float32: not an int8 peer, not in /peer or /any;",
        f"|err|: max |y - PyTorch float| over {cfg['eval_steps']} steps, state carried",
        "",
        *latency_table(rows),
        "",
        *file_ops(rows),
        "",
        *goals(rows),
    ]
    return "\n".join(lines)
