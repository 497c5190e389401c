"""Per-token step latency and RSS of tiny token models (Mamba-1, RWKV-4: tokens_models.py) on
every backend in float and int8, next to PyTorch eager, in one run.

    python -m rnnedge.boards.sweeps.tokens [--steps 2000] [--layers 4] [--hidden 256]
        [--vocab 256] [--models mamba-1,rwkv-4]
    make bench-tokens

Per model: random weights (seeded), exported with full int8 (calibrated on random tokens).
Rows: each backend x precision measured in its own child process that imports no torch
(load, one stream, `--steps` timed `step` calls on random token ids after warm-up, then the
process's peak RSS, VmHWM); PyTorch eager in this process, one thread: the library's own cached
one-token decode and the step adapter (states explicit). p50/p90/p99 in microseconds;
tokens/s = 1e6 / p50. Then the board floors of boards/cost.py (ESTIMATES from the profiles)
and the model files' sizes, float vs int8. Needs torch and transformers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rnnedge.boards.bench.latency import LatencyStats, measure
from rnnedge.boards.cost import board_floor, graph_cost
from rnnedge.boards.profiles import all_profiles
from rnnedge.boards.sweeps.tokens_models import MODELS, TokenModel
from rnnedge.runtime import available_backends
from rnnedge.runtime.bundle import read_bundle

PRECISIONS = ("float", "int8")
LOOSE = {"max_err_pct": 50.0, "allow_drift": True}
CHILD = """
import json, sys, numpy as np
from rnnedge.boards.bench.latency import measure
from rnnedge.runtime import load
path, backend, precision, steps, vocab = sys.argv[1:6]
s = load(path, backend=backend, precision=precision).stream(checked=False)
ids = np.random.default_rng(0).integers(0, int(vocab), (4096, 1, 1)).astype(np.int64)
i = [0]
def call():
    i[0] = (i[0] + 1) % len(ids)
    s.step(ids[i[0]])
st = measure(call, int(steps), warmup=200)
# VmHWM: this process image's peak (ru_maxrss would carry the parent's peak over the exec)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps(dict(p50=st.p50, p90=st.p90, p99=st.p99, rss=int(hwm) / 1024)))
"""


def _child(path: Path, backend: str, precision: str, steps: int, vocab: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, str(path), backend, precision, str(steps), str(vocab)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _export(tm: TokenModel, model, vocab: int, out: Path) -> Path:
    from rnnedge.export.pipeline import export_bundle

    step = tm.adapter(model)
    rng = np.random.default_rng(1)
    calib = [rng.integers(0, vocab, (64, 1, 1)).astype(np.int64) for _ in range(4)]
    # random weights: no plan is "accurate", so the all-int8 plan is taken as it is (a loose
    # budget skips mixed precision's search); the trained model's accuracy is in the tests
    return export_bundle(
        step, step.example(), out, quantize="int8", calibration=calib, int8_budget=LOOSE
    )


def _eager_rows(tm: TokenModel, model, steps: int) -> dict[str, LatencyStats]:
    import torch

    torch.set_num_threads(1)
    step = tm.adapter(model)
    state = [step.example()]

    def adapter_call() -> None:
        with torch.no_grad():
            out = step(*state[0])
            state[0] = (state[0][0], *out[1:])

    n = max(steps // 4, 200)  # the eager steps are ~100x slower than the interpreters'
    return {
        "pytorch eager (library's cached decode)": measure(tm.eager(model), n, warmup=50),
        "pytorch eager (step adapter, states explicit)": measure(adapter_call, n, warmup=50),
    }


def bench_model(tm: TokenModel, layers: int, hidden: int, vocab: int, steps: int) -> str:
    model = tm.build(layers, hidden, vocab)
    path = _export(tm, model, vocab, Path(tempfile.mkdtemp()) / f"{tm.name}.rnnedge")
    eager = _eager_rows(tm, model, steps)
    rows = {
        f"{b} {p}": _child(path, b, p, steps, vocab)
        for b in available_backends()
        for p in PRECISIONS
    }
    base = eager["pytorch eager (library's cached decode)"].p50
    params = sum(p.numel() for p in model.parameters())
    head = f"{tm.name}: {layers} layers x {hidden}, vocab {vocab}, {params / 1e6:.2f} M parameters"
    lines = [head, ""]
    lines.append(f"{'path':46s} {'p50':>9s} {'p90':>9s} {'p99':>9s} {'tok/s':>8s} {'x eager':>8s}"
                 f" {'RSS MiB':>8s}")  # fmt: skip
    for name, st in eager.items():
        lines.append(_row(name, st.p50, st.p90, st.p99, base, None))
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"{name:46s} failed: {r['error']}")
            continue
        lines.append(_row(name, r["p50"], r["p90"], r["p99"], base, r["rss"]))
    return "\n".join([*lines, "", *_boards(path), "", *_sizes(path)])


def _row(name: str, p50: float, p90: float, p99: float, base: float, rss: float | None) -> str:
    mem = f"{rss:8.1f}" if rss is not None else f"{'-':>8s}"
    return (f"{name:46s} {p50:9.1f} {p90:9.1f} {p99:9.1f} {1e6 / p50:8.0f} {base / p50:7.1f}x"
            f" {mem}")  # fmt: skip


def _boards(path: Path) -> list[str]:
    cost = graph_cost(read_bundle(path).graph)
    lines = [f"board floors (ESTIMATES, boards/cost.py; {cost.macs / 1e6:.2f} M MACs per token):"]
    for name, profile in all_profiles().items():
        parts = []
        for p in PRECISIONS:
            f = board_floor(cost, profile, p)
            parts.append(f"{p} {f.floor_us:7.1f} us ({1e6 / f.floor_us:6.0f} tok/s, {f.bound})")
        lines.append(f"  {name:10s} " + "   ".join(parts))
    return lines


def _sizes(path: Path) -> list[str]:
    lines = ["model files, int8 vs float:"]
    for stem, ext in (("model", "onnx"), ("model", "tflite"), ("model", "c")):
        f, q = path / f"{stem}.{ext}", path / f"{stem}.int8.{ext}"
        if f.exists() and q.exists():
            a, b = f.stat().st_size, q.stat().st_size
            lines.append(f"  {ext:7s} {a / 1024:9.1f} KiB -> {b / 1024:9.1f} KiB ({b / a:.0%})")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--models", default=",".join(MODELS))
    a = p.parse_args()
    for name in a.models.split(","):
        print(bench_model(MODELS[name], a.layers, a.hidden, a.vocab, a.steps), flush=True)
        print()


if __name__ == "__main__":
    main()
