"""x86 vs arm64: record every backend's outputs on each machine, then report the differences.

    compare.py record BUNDLE... --out x86.npz                       (on x86, the reference)
    compare.py record BUNDLE... --reference x86.npz --out a72.npz    (inside the arm64 root)
    compare.py report x86.npz cortex-a72=a72.npz cortex-a76=a76.npz  (on the host)

`record` streams the same inputs through every backend importable here, in every precision the
bundle has for it, two ways:
  free   - the Stream carries its own state from step to step, as deployed;
  forced - before each step the state is set to the REFERENCE machine's state at that step
           (teacher forcing), so both machines see exactly the same inputs at every step and an
           error cannot compound (only with --reference; the inputs come from it too).
It also streams golden.npz and keeps the worst error against the PyTorch outputs stored there.
A run whose free-running outputs equal the reference's exactly records them as its forced
ones too (the same state at every step gives the same step), without running them again.
For a bundle with int8 (spec_steps.py), on the first SPEC_STEPS inputs: every int8 interpreter
here against the numpy integer spec in the rounding it is held to on this machine, in
quantisation steps, and the numpy backend's int8 (the "fp32" spec; too slow emulated for
more steps or for golden.npz). A bundle named *_int8 runs in int8 only: its float files are
those of the bundle without the suffix.
`report` prints max abs error tables and exits 1 when a float step-by-step or golden error
exceeds TOL (relative to max(1, |reference|), as tests/helpers.assert_close measures), or
when an int8 output or state is more than spec_steps.LIMIT steps from the spec on any machine.

Needs numpy and the rnnedge runtime only, never torch: it runs inside the emulated root.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # a folder of scripts, not a package
import spec_steps

# float results must agree step by step to this (ARCHITECTURE.md: every backend is held to
# 1e-5 against PyTorch); int8 is reported only: 1 LSB is a per-tensor scale, not a constant
TOL = {"float": 1e-5}
STEPS = 1000
SPEC_STEPS = 200  # the numpy spec runs 30-40 ms a step emulated (3-11 ms natively, loaded)
INT8_ONLY = "_int8"  # bundle name suffix: run in int8 only
SEP = "|"  # npz key = bundle|backend|precision|mode|tensor

# the manifest names the file format; the runtime names the interpreter that runs it
RUNTIME_OF = {"onnx": "onnxruntime", "tflite": "litert"}


def _key(*parts: str) -> str:
    return SEP.join(parts)


def _runs(bundle) -> list[tuple[str, str]]:
    """(backend, precision) pairs this machine can run for the bundle (numpy's int8 is
    recorded from the spec run, in record_spec)."""
    from rnnedge.runtime import available_backends

    have = set(available_backends())
    pairs = [("numpy", "float")] + [
        (RUNTIME_OF[m.backend], m.precision) for m in bundle.manifest.models
    ]
    if bundle.path.name.removesuffix(".rnnedge").endswith(INT8_ONLY):
        pairs = [p for p in pairs if p[1] != "float"]
    return [p for p in pairs if p[0] in have]


def _stream_rows(stream, xs: np.ndarray, forced: list[dict] | None) -> dict[str, np.ndarray]:
    """Steps xs through stream; returns each data output and each state after every step,
    stacked over time. forced[t], if given, is the state set before step t."""
    rows: dict[str, list[np.ndarray]] = {}
    for t, x in enumerate(xs):
        if forced is not None:
            stream.state = forced[t]
        ys = stream.step(x)
        ys = ys if isinstance(ys, tuple) else (ys,)
        for i, y in enumerate(ys):
            rows.setdefault(f"out{i}", []).append(np.asarray(y))
        for name, s in stream.state.items():
            rows.setdefault(f"state:{name}", []).append(s)
    return {k: np.stack(v) for k, v in rows.items()}


def _forced_states(ref: dict[str, np.ndarray], prefix: str, initial: dict) -> list[dict]:
    """The reference's state before each step: the initial state, then its state after step
    t - 1."""
    names = list(initial)
    after = {n: ref[_key(prefix, "free", f"state:{n}")] for n in names}
    steps = len(next(iter(after.values()))) if names else 0
    return [initial] + [{n: after[n][t] for n in names} for t in range(steps - 1)]


def _golden_error(model) -> float:
    """Worst error of the stream against golden.npz (PyTorch), relative to max(1, |ref|),
    with the state carried from step to step."""
    graph, gold = model.bundle.graph, model.bundle.golden()
    names = [t.name for t in graph.data_outputs]
    worst, i = 0.0, 0
    while f"seq{i}.{graph.inputs[0].name}" in gold:
        rows = _stream_rows(model.stream(), gold[f"seq{i}.{graph.inputs[0].name}"], None)
        for j, name in enumerate(names):
            worst = max(worst, rel_err(rows[f"out{j}"], gold[f"seq{i}.{name}"]))
        i += 1
    return worst


def _same(ref: dict | None, rows: dict[str, np.ndarray], prefix: str) -> bool:
    """rows equal the reference's free-running rows of prefix exactly (same keys too)."""
    if ref is None:
        return False
    theirs = {k: v for k, v in ref.items() if k.startswith(_key(prefix, "free", ""))}
    mine = {_key(prefix, "free", k): v for k, v in rows.items()}
    return theirs.keys() == mine.keys() and all(np.array_equal(theirs[k], mine[k]) for k in mine)


def _forced_rows(model, xs, reference, prefix: str, free: dict) -> dict[str, np.ndarray]:
    if _same(reference, free, prefix):
        return free
    forced = _forced_states(reference, prefix, model.stream().state)
    return _stream_rows(model.stream(), xs, forced)


def record_spec(path: Path, b: str, xs: np.ndarray, reference: dict | None) -> dict:
    """The spec comparison of an int8 bundle (spec_steps.measure) and the numpy backend's
    int8 rows, from the "fp32" spec's run over xs."""
    import rnnedge
    from rnnedge.runtime import read_bundle

    bundle = read_bundle(path)
    text, fp32 = spec_steps.measure(bundle, xs)
    out = {_key("spec", b): np.array(text)}
    g, prefix = bundle.graph, _key(b, "numpy", "int8")
    n = len(g.data_outputs)
    free = {f"out{i}": np.stack([row[i] for row in fp32]) for i in range(n)}
    for j, s in enumerate(g.states):
        free[f"state:{s.input}"] = np.stack([row[n + j] for row in fp32])
    out |= {_key(prefix, "free", k): v for k, v in free.items()}
    if reference is not None and _key(prefix, "free", "out0") in reference:
        model = rnnedge.load(path, backend="numpy", precision="int8")
        rows = _forced_rows(model, xs, reference, prefix, free)
        out |= {_key(prefix, "forced", k): v for k, v in rows.items()}
    out[_key(prefix, "golden")] = np.array(np.nan)  # not measured: see the module docstring
    return out


def record(
    bundles: list[Path], reference: dict | None, steps: int, spec_steps_n: int = SPEC_STEPS
) -> dict[str, np.ndarray]:
    import rnnedge
    from rnnedge.runtime import read_bundle

    out: dict[str, np.ndarray] = {}
    for path in bundles:
        b = path.name.removesuffix(".rnnedge")
        bundle = read_bundle(path)
        if reference is None:
            shape = bundle.manifest.step_input.shape
            rng = np.random.default_rng(sum(map(ord, b)))
            xs = rng.standard_normal((steps, *shape)).astype(np.float32)
        else:
            xs = reference[_key(b, "inputs")]
        out[_key(b, "inputs")] = xs
        for backend, precision in _runs(bundle):
            model = rnnedge.load(path, backend=backend, precision=precision)
            prefix = _key(b, backend, precision)
            free = _stream_rows(model.stream(), xs, None)
            out |= {_key(prefix, "free", k): v for k, v in free.items()}
            if reference is not None and _key(prefix, "free", "out0") in reference:
                rows = _forced_rows(model, xs, reference, prefix, free)
                out |= {_key(prefix, "forced", k): v for k, v in rows.items()}
            out[_key(prefix, "golden")] = np.array(_golden_error(model))
        if "quant.json" in bundle.files:
            out |= record_spec(path, b, xs[:spec_steps_n], reference)
    out["meta"] = np.array(json.dumps(_meta()))
    return out


def _meta() -> dict[str, str]:
    import importlib.metadata as md

    meta = {"machine": platform.machine(), "python": platform.python_version()}
    for dist in ("numpy", "onnxruntime", "ai-edge-litert"):
        try:
            meta[dist] = md.version(dist)
        except md.PackageNotFoundError:
            meta[dist] = "-"
    return meta


# ---- report: pure functions over the recorded dicts (tested in tests/boards/test_arm64_compare.py)


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} != {b.shape}")
    return float(np.abs(a - b).max(initial=0.0))


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max(1, max |expected|), as assert_close measures."""
    scale = max(1.0, float(np.abs(np.asarray(expected, np.float64)).max(initial=0.0)))
    return max_abs(actual, expected) / scale


@dataclass(frozen=True)
class Row:
    bundle: str
    backend: str
    precision: str
    cpu: str
    forced: float | None  # max abs, step by step with the reference's state (None: not run)
    forced_rel: float | None
    free: float | None  # max abs, state fed back
    golden: float | None  # worst error vs PyTorch on golden.npz (relative)


def _runs_in(rec: dict[str, np.ndarray]) -> list[tuple[str, str, str]]:
    found = {tuple(k.split(SEP)[:3]) for k in rec if k.count(SEP) == 4 and "|free|" in k}
    return sorted(found)


def _worst(ref: dict, rec: dict, prefix: str, mode: str) -> tuple[float, float] | None:
    keys = [k for k in ref if k.startswith(_key(prefix, "free", ""))]
    pairs = [(ref[k], rec.get(k.replace("|free|", f"|{mode}|"))) for k in keys]
    if not keys or any(r is None for _, r in pairs):
        return None
    return (
        max(max_abs(r, x) for x, r in pairs),
        max(rel_err(r, x) for x, r in pairs),
    )


def compare(ref: dict[str, np.ndarray], recs: dict[str, dict[str, np.ndarray]]) -> list[Row]:
    """One Row per (bundle, backend, precision) of the reference and per CPU: arm64's outputs
    and states vs the reference's free-running ones."""
    rows = []
    for bundle, backend, precision in _runs_in(ref):
        prefix = _key(bundle, backend, precision)
        for cpu, rec in recs.items():
            forced = _worst(ref, rec, prefix, "forced")
            free = _worst(ref, rec, prefix, "free")
            golden = rec.get(_key(prefix, "golden"))
            rows.append(
                Row(
                    bundle,
                    backend,
                    precision,
                    cpu,
                    forced=forced[0] if forced else None,
                    forced_rel=forced[1] if forced else None,
                    free=free[0] if free else None,
                    golden=float(golden) if golden is not None else None,
                )
            )
    return rows


def failures(rows: list[Row]) -> list[str]:
    """What breaks the gate: a run the reference has but arm64 lacks, or a float error over TOL
    step by step or against PyTorch's golden vectors."""
    bad = []
    for r in rows:
        where = f"{r.bundle} {r.backend}/{r.precision} on {r.cpu}"
        if r.forced is None or r.free is None or r.golden is None:
            bad.append(f"{where}: not run on arm64")
            continue
        tol = TOL.get(r.precision)
        if tol is not None and r.forced_rel > tol:
            bad.append(f"{where}: step-by-step error {r.forced_rel:.2e} > {tol:g}")
        if tol is not None and r.golden > tol:
            bad.append(f"{where}: error vs PyTorch golden {r.golden:.2e} > {tol:g}")
    return bad


def _fmt(v: float | None) -> str:
    if v is None:
        return "missing"
    if np.isnan(v):
        return "-"  # not measured
    return "0" if v == 0 else f"{v:.1e}"


def table(rows: list[Row]) -> str:
    """A markdown table: one line per bundle, backend and precision, two columns per CPU."""
    cpus = sorted({r.cpu for r in rows})
    head = ["bundle", "backend", "precision"]
    for cpu in cpus:
        head += [f"{cpu} step", f"{cpu} free", f"{cpu} golden"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_run: dict[tuple[str, str, str], dict[str, Row]] = {}
    for r in rows:
        by_run.setdefault((r.bundle, r.backend, r.precision), {})[r.cpu] = r
    for run, per_cpu in by_run.items():
        cells = list(run)
        for cpu in cpus:
            r = per_cpu.get(cpu)
            cells += [_fmt(r.forced), _fmt(r.free), _fmt(r.golden)] if r else ["-"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """Worst step-by-step and free-running error per backend and precision, over bundles."""
    worst: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        w = worst.setdefault((r.backend, r.precision), [0.0, 0.0])
        w[0] = max(w[0], r.forced if r.forced is not None else np.inf)
        w[1] = max(w[1], r.free if r.free is not None else np.inf)
    lines = [
        "| backend | precision | worst step-by-step | worst free-running |",
        "|---|---|---|---|",
    ]
    for (backend, precision), (forced, free) in sorted(worst.items()):
        lines.append(f"| {backend} | {precision} | {_fmt(forced)} | {_fmt(free)} |")
    return "\n".join(lines)


def _load(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("bundles", nargs="+", type=Path)
    r.add_argument("--reference", help="the x86 record: its inputs and states are used")
    r.add_argument("--steps", type=int, default=STEPS)
    r.add_argument("--spec-steps", type=int, default=SPEC_STEPS, help="int8 vs spec, numpy int8")
    r.add_argument("--out", required=True)
    c = sub.add_parser("report")
    c.add_argument("reference")
    c.add_argument("records", nargs="+", help="CPU=record.npz")
    a = p.parse_args(argv)
    if a.cmd == "record":
        ref = _load(a.reference) if a.reference else None
        np.savez(a.out, **record(a.bundles, ref, a.steps, a.spec_steps))
        return 0
    ref = _load(a.reference)
    recs = {cpu: _load(f) for cpu, f in (s.split("=", 1) for s in a.records)}
    return report(ref, recs)


def spec_report(machines: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Prints the int8-vs-spec table of every machine's record; returns its failures."""
    rows = [
        row
        for machine, rec in machines.items()
        for k in sorted(rec)
        if k.startswith(_key("spec", ""))
        for row in spec_steps.spec_rows(k.split(SEP)[1], machine, str(rec[k]))
    ]
    if not rows:
        return []
    print("\nint8 vs the numpy integer spec on each machine, max quantisation steps per output")
    print("and state (spec: the rounding the backend is held to there; step: the spec's state")
    print("fed to both every step; free: the backend's own state fed back; (f): a float")
    print(f"tensor, max abs; {spec_steps.BUILTIN}: LiteRT without XNNPACK)\n")
    print(spec_steps.spec_table(rows))
    print(
        "\nworst over integer outputs and states, step / free, against the spec each is held to\n"
    )
    print(spec_steps.spec_summary(rows))
    return spec_steps.spec_failures(rows)


def report(ref: dict[str, np.ndarray], recs: dict[str, dict[str, np.ndarray]]) -> int:
    rows = compare(ref, recs)
    print(f"x86 reference: {ref['meta']}")
    for cpu, rec in recs.items():
        print(f"{cpu}: {rec['meta']}")
    print("\nmax abs error, arm64 vs x86 (step: same inputs and state each step; free: state")
    print("fed back; golden: arm64 vs PyTorch on golden.npz, relative to max(1, |ref|))\n")
    print(table(rows))
    print()
    print(summary(rows))
    bad = failures(rows)
    spec_bad = spec_report({"x86": ref, **recs})
    for line in bad + spec_bad:
        print(f"FAIL: {line}")
    n_bad = len({line.split(":")[0] for line in bad})
    print(f"\narm64: {len(rows) - n_bad} passed, {n_bad} failed")
    print(f"int8 vs spec: {len(spec_bad)} failed (limit {spec_steps.LIMIT:g} steps)")
    return 1 if bad or spec_bad else 0


if __name__ == "__main__":
    sys.exit(main())
