"""The text report of `make bench-int8` (boards/int8_bench.py) from its result document:
one latency table, what each peer's file holds, and the issue's two goals checked."""

from __future__ import annotations

GOAL_HIDDEN = 256  # "never slower than rnnedge float on the same backend at hidden >= 256"
REASON_WIDTH = 90


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _row_line(r: dict) -> str:
    head = f"{r['kind']:4s} {r['hidden']:4d}  {r['name']:34s} "
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
    header = f"{'kind':4s} {'H':>4s}  {'path':34s} " + " ".join(f"{c:>8s}" for c in cols)
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
        lines.append(f"  {r['kind']:4s} {r['name']:34s} {ops}")
    return lines


def goals(rows: list[dict]) -> list[str]:
    """The issue's goals for rnnedge int8 (and int8-dynamic, for reference)."""
    lines = [
        "goals (p50 ratios; 'MET' is one noisy run's verdict):",
        f"  A: rnnedge int8 p50 <= rnnedge float p50, same backend, hidden >= {GOAL_HIDDEN}",
        "  B: rnnedge int8 p50 <= best peer int8 p50 of the same model on the same backend, "
        "every hidden size (and, for reference, on any backend)",
    ]
    for precision in ("int8", "int8-dynamic"):
        mine = [r for r in rows if r["who"] == "rnnedge" and r["precision"] == precision]
        for r in mine:
            where = f"  {precision:12s} {r['kind']:4s} {r['hidden']:4d} {r['backend']:12s}"
            if r["unavailable"]:
                lines.append(f"{where} not measured (not available)")
                continue
            a = _verdict(r["vs_float"]) if r["hidden"] >= GOAL_HIDDEN else "n/a"
            b, any_ = _verdict(r["vs_best_peer"]), _verdict(r["vs_any_peer"])
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
        "/float: p50 over rnnedge float on the same backend; /peer, /any: p50 over the best "
        "peer int8 of the same model on the same backend, on any backend;",
        f"|err|: max |y - PyTorch float| over {cfg['eval_steps']} steps, state carried",
        "",
        *latency_table(rows),
        "",
        *file_ops(rows),
        "",
        *goals(rows),
    ]
    return "\n".join(lines)
