"""The native backend against the interpreters and PyTorch, float and int8, in one run.

    python -m rnnedge.boards.sweeps.native [--steps 5000] [--hidden 64 128 256 512] [--streams 64]
    make bench-native

Model: GRU(40 -> H) + Linear(H -> 10), batch 1, one step per call, state fed back (issue 18's
setting). p50 / p90 / p99 in microseconds over `--steps` timed calls after warm-up, one thread,
median of `--rounds` interleaved rounds. Rows:
  native stream step          Stream.step (checked / unchecked) on the native backend, through
                              its call extension (native_call.py), and unchecked through ctypes
  native runner step          the runner alone (Runner.step: the extension, list of outputs)
  native empty step           the extension's Stepper on a C step that does nothing: the whole
                              call path (checks, copy in, call, output copies), no arithmetic
  native bound call           the bare ctypes call on buffers bound once (no copies)
  native empty call           rnnedge_step_n(0, ...): the cost of a ctypes call, no work
  native C loop per step      rnnedge_step_each over 1,000 streams / 1,000: the C alone
  native 64 streams, bound    rnnedge_step_n over 64 streams (batched: each node once for all
                              of them, the linears as matrix-matrix products), no copies
  raw litert                  interpreter set_tensor + invoke + get_tensor, straight-line
  raw onnxruntime             session.run with a feed dict
  pytorch eager               nn.GRU at T = 1 + head, state fed back
On an AVX-512 VNNI x86 core it also builds and runs boards/native_floor.c: the same weight
bytes streamed from L2 and the same multiply-adds at the FMA / vpdpbusd peak, with nothing
else in the loop (the floors the step's C time is compared against in docs/native.md).
Needs torch (to export and for the PyTorch peer).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnnedge.boards.bench.latency import LatencyStats, measure, raw_call
from rnnedge.boards.sweeps.int8_config import FEATURES, make_model, sequences
from rnnedge.runtime import available_backends, load
from rnnedge.runtime.model import Model

C_LOOP_STREAMS = 1000
ISSUE = {"float": 3.7, "int8": 1.49}  # the prototype's float / int8-from-Python, us


def _litert_straight(model: Model, x: np.ndarray) -> Callable[[], object]:
    """The cheapest LiteRT pattern: bound methods, state read back and set, straight-line."""
    b = model.backend
    it = b.interpreter
    g = model.bundle.graph
    set_t, get_t, invoke = it.set_tensor, it.get_tensor, it.invoke
    ins, outs, nd = b.input_indices, b.output_indices, len(g.data_outputs)
    states = [g.constants[s.init].copy() for s in g.states]
    pairs = list(zip(ins[1:], outs[nd:]))

    def call() -> None:
        set_t(ins[0], x)
        for (i, o), s in zip(pairs, states):
            set_t(i, get_t(o) if s is None else s)
        invoke()
        get_t(outs[0])

    return call


def _native_calls(model: Model, x: np.ndarray, streams: int) -> dict[str, Callable[[], object]]:
    runner = model.backend.runner()
    runner.step(x)
    empty = runner.empty_step()
    return {
        "runner step": lambda: runner.step(x),
        **({"empty step (extension)": lambda: empty(x)} if empty else {}),
        "bound call": runner.bound_call(),
        "empty call": runner.empty_call(),
        "C loop x1000": model.backend.runner(C_LOOP_STREAMS).each_call(),
        f"{streams} streams, bound call": model.backend.runner(streams).bound_call(),
    }


def torch_step(model) -> Callable[[], object]:
    """PyTorch eager as the user runs it: nn.GRU at T = 1 and the head, state fed back."""
    import torch

    torch.set_num_threads(1)
    x = torch.zeros(1, 1, FEATURES)
    h: list = [None]

    def step() -> None:
        with torch.no_grad():
            out, h[0] = model.rnn(x, h[0])
            model.head(out)

    return step


def _calls(path: Path, model, streams: int) -> dict[str, Callable[[], object]]:
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, FEATURES)).astype(np.float32)
    have = available_backends()
    calls: dict[str, Callable[[], object]] = {"pytorch eager nn.GRU(T=1) + head": torch_step(model)}
    for precision in ("float", "int8"):
        if "native" in have:
            m = load(path, backend="native", precision=precision)
            s1, s2 = m.stream(), m.stream(checked=False)
            calls[f"native {precision} stream step (checked)"] = lambda s=s1: s.step(x)
            calls[f"native {precision} stream step (unchecked)"] = lambda s=s2: s.step(x)
            os.environ["RNNEDGE_NATIVE_CALL"] = "ctypes"
            try:
                s3 = load(path, backend="native", precision=precision).stream(checked=False)
            finally:
                del os.environ["RNNEDGE_NATIVE_CALL"]
            calls[f"native {precision} stream step (unchecked, ctypes)"] = lambda s=s3: s.step(x)
            for k, c in _native_calls(m, x, streams).items():
                calls[f"native {precision} {k}"] = c
            many = m.streams(streams)
            xs = np.zeros((streams, 1, FEATURES), np.float32)
            calls[f"native {precision} {streams} streams, one call"] = lambda mm=many, xx=xs: (
                mm.step(xx)
            )
        if "litert" in have:
            m = load(path, backend="litert", precision=precision)
            calls[f"raw litert {precision} (straight-line)"] = _litert_straight(m, x)
            calls[f"raw litert {precision} (LiteRTRunner)"] = raw_call(m, x)
        if "onnxruntime" in have:
            m = load(path, backend="onnxruntime", precision=precision)
            calls[f"raw onnxruntime {precision} session.run"] = raw_call(m, x)
    return calls


def bench(steps: int, hidden: int, streams: int, rounds: int) -> str:
    import torch

    from rnnedge.export.pipeline import export_bundle

    model = make_model("gru", hidden)
    calib = sequences(1, 10, 200)
    out = Path(tempfile.mkdtemp()) / "kws.rnnedge"
    path = export_bundle(
        model, torch.zeros(1, 1, FEATURES), out, quantize="int8", calibration=calib
    )
    calls = _calls(path, model, streams)
    results: dict[str, list[LatencyStats]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            n = max(steps // 100, 100) if "x1000" in name else steps
            results[name].append(measure(call, n))
    stats = {k: sorted(v, key=lambda s: s.p50)[len(v) // 2] for k, v in results.items()}
    return _report(stats, hidden, streams, _isa(path))


def _isa(path: Path) -> str:
    """Which int8 matrix-vector kernel the build chose (export/c/simd.py)."""
    import ctypes

    lib = ctypes.CDLL(str(load(path, backend="native", precision="int8").backend.library))
    return ctypes.string_at(
        ctypes.addressof(ctypes.c_char.in_dll(lib, "rnnedge_gemv_isa"))
    ).decode()


def _report(stats: dict[str, LatencyStats], hidden: int, streams: int, isa: str) -> str:
    lines = [f"GRU({FEATURES} -> {hidden}) + Linear({hidden} -> 10), one thread, int8 kernel {isa}"]
    lines.append(f"{'path':50s} {'p50':>8s} {'p90':>8s} {'p99':>8s}  (us)")
    for name, s in stats.items():
        div = C_LOOP_STREAMS if "x1000" in name else 1
        note = f"  = {s.p50 / div:.3f} us per step" if div > 1 else ""
        if "streams, one call" in name or "streams, bound call" in name:
            note = f"  = {s.p50 / streams:.3f} us per stream-step"
        lines.append(f"{name:50s} {s.p50:8.2f} {s.p90:8.2f} {s.p99:8.2f}{note}")
    lines += ["", "ratios of p50 (issue 18's targets in brackets):"]
    for p in ("float", "int8"):
        nat = stats.get(f"native {p} stream step (unchecked)")
        raw = stats.get(f"raw litert {p} (straight-line)")
        one = stats.get(f"native {p} runner step")
        many = stats.get(f"native {p} {streams} streams, one call")
        if nat and raw:
            target = "<= 0.5" if p == "float" else ("<= 0.32" if hidden != 512 else "<= 0.7")
            lines.append(
                f"  native {p} unchecked / raw litert {p}: {nat.p50 / raw.p50:.3f} [{target}]"
            )
        if nat:
            target = " [<= 1.2 us]" if p == "int8" and hidden == 128 else ""
            lines.append(
                f"  native {p} unchecked: {nat.p50:.2f} us{target} [prototype {ISSUE[p]} us]"
            )
            lines += _bounds(stats, p, nat)
        if one and many:
            ratio = many.p50 / streams / one.p50
            lines.append(
                f"  native {p} {streams} streams per stream-step / one step: {ratio:.3f} [<= 0.1]"
            )
        single = stats.get(f"native {p} bound call")
        empty = stats.get(f"native {p} empty call")
        bound = stats.get(f"native {p} {streams} streams, bound call")
        if single and empty and bound:  # the C alone: bound call minus the empty call's cost
            ratio = (bound.p50 - empty.p50) / streams / (single.p50 - empty.p50)
            lines.append(f"  native {p} C alone: {streams} streams batched / one step: {ratio:.3f}")
    return "\n".join(lines)


def _bounds(stats: dict[str, LatencyStats], p: str, nat: LatencyStats) -> list[str]:
    """The unchecked step split into C alone, the call path and the Python around it."""
    bound, empty = stats.get(f"native {p} bound call"), stats.get(f"native {p} empty call")
    path = stats.get(f"native {p} empty step (extension)")
    if not (bound and empty and path):
        return []
    c = bound.p50 - empty.p50
    return [
        f"    = C {c:.2f} (bound - empty ctypes call) + call path {path.p50:.2f} (empty step)"
        f" + Stream.step's Python {nat.p50 - c - path.p50:.2f} us"
    ]


FLOOR_C = Path(__file__).resolve().parents[1] / "native_floor.c"


def floors(hidden: int) -> str:
    """boards/native_floor.c's report at `hidden`, or why it did not run."""
    from rnnedge.runtime.backends import native_build

    cc = native_build.compiler()
    cpu = Path("/proc/cpuinfo")
    if cc is None or not FLOOR_C.exists() or not cpu.exists():
        return "floors: not measured (needs a C compiler and boards/native_floor.c)"
    if "avx512_vnni" not in cpu.read_text().split():
        return "floors: not measured (native_floor.c needs AVX-512 VNNI)"
    exe = Path(tempfile.mkdtemp()) / "native_floor"
    cmd = [cc[0], "-O3", "-march=native", "-std=c99", str(FLOOR_C), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True)
    run = subprocess.run([str(exe), str(hidden)], check=True, capture_output=True, text=True)
    return "floors (boards/native_floor.c):\n" + run.stdout.rstrip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--streams", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    for h in a.hidden:
        print(bench(a.steps, h, a.streams, a.rounds) + "\n", flush=True)
        print(floors(h) + "\n", flush=True)


if __name__ == "__main__":
    main()
