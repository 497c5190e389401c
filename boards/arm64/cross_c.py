"""The generated C on arm64 without Python: exports some zoo models on x86 (needs torch),
writes each one's C self-check project (`rnnedge export --target c`: model.c + main.c that
replays golden steps), builds it for x86 and, with aarch64-linux-gnu-gcc, for arm64 twice
(Armv8.2 with the sdot kernel, and plain Armv8-A: the portable C kernel), runs the arm64
binaries under qemu-aarch64, and compares. Each main.c exits 1 when its error exceeds its
limit: int8 must equal the numpy integer spec (computed on x86) exactly, float PyTorch within
1e-4; and the arm64 and x86 runs must print the same error.

    python boards/arm64/cross_c.py OUT_DIR     (boards/arm64/cross_c.sh installs the tools)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ZOO = ("gru", "lstm_2layer", "cells", "front_end", "math_head")
INT8 = ("gru", "lstm_2layer", "cells")
CROSS = os.environ.get("CROSS_CC", "aarch64-linux-gnu-gcc")
QEMU = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64") or "qemu-aarch64"
WARN = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-O2"]
# (name, compiler, flags, runner prefix)
BUILDS = (
    ("x86", "cc", ["-march=native"], []),
    ("arm64-sdot", CROSS, ["-march=armv8.2-a+dotprod", "-static"], [QEMU, "-cpu", "max"]),
    ("arm64-c", CROSS, ["-march=armv8-a", "-static"], [QEMU, "-cpu", "cortex-a72"]),
)


def export(out: Path) -> list[Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from models import build

    from rnnedge.export.c.main_c import write_c_project
    from rnnedge.export.pipeline import export_bundle

    projects = []
    for name in ZOO:
        model, example = build(name)
        x = example[0] if isinstance(example, tuple) else example
        rng = np.random.default_rng(0)
        calib = [rng.standard_normal((100, *x.shape)).astype(np.float32) for _ in range(8)]
        kw = {"quantize": "int8", "calibration": calib} if name in INT8 else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = export_bundle(model, example, out / f"{name}.rnnedge", **kw)
        write_c_project(path, out / f"{name}_c")
        projects.append(out / f"{name}_c")
    return projects


def check(project: Path) -> list[str]:
    """Builds and runs every precision of one project; returns the failures."""
    failures = []
    for main in sorted(project.glob("main*.c")):
        model = main.name.replace("main", "model")
        printed = {}
        for name, cc, flags, prefix in BUILDS:
            exe = project / f"{main.stem}.{name}"
            cmd = [cc, *WARN, *flags, model, main.name, "-o", exe.name, "-lm"]
            built = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
            if built.returncode or built.stderr:
                failures.append(f"{project.name}/{model} {name}: {built.stderr.strip()}")
                continue
            ran = subprocess.run([*prefix, str(exe)], capture_output=True, text=True)
            printed[name] = ran.stdout.strip()
            print(f"  {project.name:16s} {model:18s} {name:11s} {printed[name]}", flush=True)
            if ran.returncode:
                failures.append(f"{project.name}/{model} {name}: {printed[name] or ran.stderr}")
        if len(set(printed.values())) > 1:
            failures.append(f"{project.name}/{model}: arm64 and x86 differ: {printed}")
    return failures


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures = [f for p in export(out) for f in check(p)]
    for f in failures:
        print(f"FAIL {f}", flush=True)
    print("cross C check: " + ("FAILED" if failures else "passed (arm64 == x86)"), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
