"""Runtime footprint: installed size of rnnedge with each backend extra, and peak RSS of
loading a bundle and stepping it.

    footprint.py sizes                    -> JSON: bytes on disk per extra, and per package
    footprint.py rss BUNDLE [--steps N]   -> JSON: peak RSS per backend (one process each)
    footprint.py table sizes.json rss.json...   -> markdown tables

Sizes: the files of every installed distribution in the dependency closure of `rnnedge`,
`rnnedge[onnx]` and `rnnedge[tflite]` (read from the installed metadata, so it is what
`pip install rnnedge[EXTRA]` puts on disk; pip and setuptools, which every venv has, are not
counted). RSS: VmHWM (peak) of a fresh interpreter that imports the runtime, loads the bundle
with one backend and steps it. Under qemu-user that includes qemu itself and its translated
code, so the emulated figure is shown as "guest (with qemu)": guest is the resident memory of
the emulated program's own mappings at the end of the run (see guest_rss_kib), which is what
a board would hold.

Needs numpy and the rnnedge runtime only (and `packaging`, which onnxruntime depends on, for
`sizes`).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import resource
import subprocess
import sys
from pathlib import Path

EXTRAS = {"rnnedge (numpy)": (), "rnnedge[onnx]": ("onnx",), "rnnedge[tflite]": ("tflite",)}
# one fresh process per backend, and "none": importing rnnedge.runtime only
RSS_RUNS = ("none", "numpy", "onnxruntime", "litert")
MB = 1e6


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(name: str, extras: tuple[str, ...]) -> set[str]:
    """Canonical names of the installed distributions `name[extras]` pulls in."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [(name, tuple(extras))]
    while todo:
        dist_name, dist_extras = todo.pop()
        if _canon(dist_name) in seen:
            continue
        seen.add(_canon(dist_name))
        for text in md.distribution(dist_name).requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in ("", *dist_extras)]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, tuple(req.extras)))
    return seen


def dist_bytes(name: str) -> tuple[int, int]:
    """(bytes on disk, of which .pyc files that pip compiled at install time)."""
    files = md.distribution(name).files or []
    paths = {f.locate().resolve() for f in files}
    sizes = {p: p.stat().st_size for p in paths if p.is_file()}
    return sum(sizes.values()), sum(n for p, n in sizes.items() if p.suffix == ".pyc")


def sizes() -> dict:
    per_dist: dict[str, tuple[int, int]] = {}
    out = {}
    for label, extras in EXTRAS.items():
        names = closure("rnnedge", extras)
        for n in names:
            per_dist.setdefault(n, dist_bytes(n))
        out[label] = [sum(per_dist[n][i] for n in names) for i in (0, 1)]
    ranked = dict(sorted(per_dist.items(), key=lambda kv: -kv[1][0]))
    return {"extras": out, "packages": ranked}


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def guest_rss_kib() -> int | None:
    """Under qemu-user, the resident memory of the emulated program alone: /proc/self/smaps
    is the host's view of the qemu process, whose mappings are the guest's (mapped 1:1) plus
    qemu's own: its binary, its malloc heap, its stack and the buffer of translated code (the
    only writable+executable mapping). None when not emulated."""
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return None
    total, emulated = 0, False
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        head = block.split("\n", 1)[0].split()
        path = head[5] if len(head) > 5 else ""
        found = re.search(r"^Rss:\s+(\d+)", block, re.M)
        if "qemu" in path:
            emulated = True
        elif path not in ("[heap]", "[stack]", "[vvar]", "[vdso]", "[vsyscall]") and (
            "rwx" not in head[1]
        ):
            total += int(found.group(1)) if found else 0
    return total if emulated else None


def rss_one(bundle: str, backend: str, steps: int) -> dict:
    """In THIS process: load and step, then report peak RSS."""
    import numpy as np

    import rnnedge.runtime

    if backend != "none":
        model = rnnedge.runtime.load(bundle, backend=backend)
        stream = model.stream()
        x = np.random.default_rng(0).standard_normal(model.step_input.shape).astype(np.float32)
        for _ in range(steps):
            stream.step(x)
    return {
        "vmhwm_kib": _status_kib("VmHWM"),
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "guest_rss_kib": guest_rss_kib(),
    }


def rss(bundle: str, steps: int) -> dict:
    """One fresh interpreter per backend, so each figure holds only what that backend needs."""
    from rnnedge.runtime import available_backends

    out = {}
    for backend in RSS_RUNS:
        if backend != "none" and backend not in available_backends():
            continue
        cmd = [sys.executable, __file__, "_rss_one", bundle, backend, str(steps)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
        out[backend] = json.loads(done.stdout)
    return out


def table(size_file: str | None, rss_files: dict[str, str]) -> str:
    lines = []
    if size_file:
        s = json.loads(Path(size_file).read_text())
        lines += ["| install | MB on disk | of which .pyc |", "|---|---|---|"]
        lines += [f"| {k} | {v / MB:.1f} | {c / MB:.1f} |" for k, (v, c) in s["extras"].items()]
        lines += ["", "| package | MB | of which .pyc |", "|---|---|---|"]
        lines += [f"| {k} | {v / MB:.1f} | {c / MB:.1f} |" for k, (v, c) in s["packages"].items()]
        lines.append("")
    if rss_files:
        data = {label: json.loads(Path(f).read_text()) for label, f in rss_files.items()}
        labels = list(data)
        lines += ["| backend | " + " | ".join(f"{x} RSS MiB" for x in labels) + " |"]
        lines += ["|---|" + "---|" * len(labels)]
        for backend in RSS_RUNS:
            cells = []
            for label in labels:
                cells.append(_rss_cell(data[label].get(backend)))
            name = "import only" if backend == "none" else backend
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rss_cell(r: dict | None) -> str:
    """Peak RSS in MiB; under emulation "guest (with qemu)"."""
    if not r:
        return "-"
    peak = (r["vmhwm_kib"] or r["maxrss_kib"]) / 1024
    guest = r.get("guest_rss_kib")
    return f"{guest / 1024:.1f} ({peak:.1f})" if guest else f"{peak:.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("sizes")
    r = sub.add_parser("rss")
    r.add_argument("bundle")
    r.add_argument("--steps", type=int, default=1000)
    one = sub.add_parser("_rss_one")
    one.add_argument("bundle")
    one.add_argument("backend")
    one.add_argument("steps", type=int)
    t = sub.add_parser("table")
    t.add_argument("--sizes")
    t.add_argument("rss", nargs="*", help="LABEL=rss.json")
    a = p.parse_args(argv)
    if a.cmd == "sizes":
        print(json.dumps(sizes(), indent=1))
    elif a.cmd == "rss":
        print(json.dumps(rss(a.bundle, a.steps), indent=1))
    elif a.cmd == "_rss_one":
        print(json.dumps(rss_one(a.bundle, a.backend, a.steps)))
    else:
        print(table(a.sizes, dict(s.split("=", 1) for s in a.rss)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
