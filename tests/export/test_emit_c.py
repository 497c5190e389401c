"""export/c/: the generated C compiles warning-free, refuses an op it has no kernel for (naming
it), and `rnnedge export --target c` writes a self-check that a bare compiler runs."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import numpy as np
import pytest
from models import build

from rnnedge.cli import main
from rnnedge.errors import ExportError
from rnnedge.export.c import bundle_c_files, emit_c
from rnnedge.export.capture.program import capture
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.quantize.int8_dynamic import plan_int8_dynamic
from rnnedge.runtime import ops
from rnnedge.runtime.graph import Graph, Node, TensorSpec

COMPILERS = [c for c in ("gcc", "clang") if shutil.which(c)]
pytestmark = pytest.mark.skipif(not COMPILERS, reason="needs a C compiler")
WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c"]
# -O1, and what the native backend builds with: -O3 and the host's SIMD paths (GCC's
# -Warray-bounds looks into the inlined AVX-512 kernels only there)
OPTIMISE = [["-O1"], ["-O3", "-march=native"]]

MODEL_PY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(6, 10, batch_first=True)
            self.head = nn.Linear(10, 3)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    def make():
        torch.manual_seed(0)
        return Net()
    """
)


@pytest.mark.parametrize("name", ["front_end", "math_head", "cells"])
def test_generated_c_compiles_warning_free(name, tmp_path) -> None:
    model, example = build(name)
    g = capture(model, example).graph
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((40, *g.inputs[0].shape)).astype(np.float32) for _ in range(4)]
    files = {
        **emit_c(g),
        **emit_c(g, plan_int8(g, calibrate(g, seqs))),
        **emit_c(g, plan_int8_dynamic(g)),
    }
    for fname, data in files.items():
        (tmp_path / fname).write_bytes(data)
    for cc, opt in [(cc, opt) for cc in COMPILERS for opt in OPTIMISE]:
        for c in [f for f in files if f.endswith(".c")]:
            cmd = [cc, *WARN, *opt, c, "-o", "/dev/null"]
            out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
            assert out.returncode == 0 and not out.stderr, (
                f"{' '.join(cmd)} ({name}):\n{out.stderr}"
            )


def test_op_without_c_kernel_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.setitem(ops.OPS, "frobnicate", ops.OpDef(lambda x: x, 1, 1))
    spec = TensorSpec(name="x", shape=(1, 4))
    g = Graph(
        inputs=(spec,),
        outputs=(TensorSpec(name="y", shape=(1, 4)),),
        nodes=(Node(op="frobnicate", inputs=("x",), outputs=("y",), source="model.frob"),),
        constants={},
    )
    with pytest.raises(ExportError, match=r"no C kernel for op 'frobnicate'.*model\.frob"):
        emit_c(g)
    said: list[str] = []
    assert bundle_c_files(g, None, said.append) == {}  # the bundle still exports
    assert "frobnicate" in said[0]


@pytest.fixture(scope="module")
def c_project(tmp_path_factory):
    d = tmp_path_factory.mktemp("target_c")
    (d / "net.py").write_text(MODEL_PY)
    rng = np.random.default_rng(0)
    np.savez(d / "calib.npz", *[rng.standard_normal((50, 1, 1, 6)).astype(np.float32)] * 4)
    args = ["export", f"{d / 'net.py'}:make", "--step-shape", "1,1,6", "-o", str(d / "net.rnnedge")]
    args += ["--quantize", "int8", "--calibration", str(d / "calib.npz"), "--target", "c"]
    assert main(args) == 0
    return d / "net_c"


@pytest.mark.parametrize("main_c", ["main.c", "main.int8.c"])
def test_target_c_self_check_runs_with_a_bare_compiler(c_project, main_c, tmp_path) -> None:
    model_c = "model.c" if main_c == "main.c" else "model.int8.c"
    exe = tmp_path / "a.out"
    cmd = ["cc", "-O2", model_c, main_c, "-lm", "-o", str(exe)]
    subprocess.run(cmd, cwd=c_project, check=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    assert "max error" in run.stdout
    # and it can fail: one weight changed in the C makes the self-check exit 1
    src = (c_project / model_c).read_text()
    start = src.index("/* w_q" if "int8" in model_c else "/* w^T")  # the first weight array
    head, tail = src[: start + 100], src[start + 100 :]
    first = tail.index(",")
    (tmp_path / model_c).write_text(head + tail[:first] + " + 9" + tail[first:])
    for f in (model_c.replace(".c", ".h"), main_c):
        (tmp_path / f).write_bytes((c_project / f).read_bytes())
    subprocess.run(["cc", "-O2", model_c, main_c, "-lm", "-o", str(exe)], cwd=tmp_path, check=True)
    assert subprocess.run([str(exe)], capture_output=True).returncode == 1
