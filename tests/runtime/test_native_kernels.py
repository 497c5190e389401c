"""The native backend's kernels (issue 18, part 2): every int8 matrix-vector kernel the build
can pick (AVX-512 VNNI, AVX2, plain C; arm64's sdot under make arm64) equals the numpy
integer spec bit for bit, and the float step with its own exp/tanh stays within 1e-6 of the
numpy float spec over 1,000 streamed steps. Sizes are chosen so the packed weights need
padding (K not a multiple of 4, N not of 16)."""

from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rnnedge
from rnnedge.export.c.prelude import PRELUDE
from rnnedge.export.c.simd import GEMV
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.backends import native_build

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="needs a C compiler")

X86 = platform.machine() in ("x86_64", "AMD64")
CPU_FLAGS = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
# (flags, the kernel rnnedge_gemv_isa must name, whether this CPU runs it)
ISAS = [
    ("-O2 -march=x86-64", "c", X86),
    ("-O3 -march=x86-64-v3", "avx2", X86 and "avx2" in CPU_FLAGS),
    ("-O3 -march=native", "avx512vnni", X86 and "avx512_vnni" in CPU_FLAGS),
]


class Net(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn = rnn(10, 37, batch_first=True)
        self.head = nn.Linear(37, 5)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((60, 1, 1, 10)).astype(np.float32) for _ in range(4)]
    out = {}
    for kind in ("gru", "lstm"):
        path = tmp_path_factory.mktemp("kernels") / f"{kind}.rnnedge"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[kind] = export_bundle(
                Net(kind).eval(), torch.zeros(1, 1, 10), path, quantize="int8", calibration=calib
            )
    return out


def _sequence(steps: int) -> np.ndarray:
    return (1.5 * np.random.default_rng(3).standard_normal((steps, 1, 1, 10))).astype(np.float32)


@pytest.mark.slow  # three builds of two models; the default run tests the native build's
@pytest.mark.parametrize(("flags", "isa", "runs"), ISAS, ids=[i[1] for i in ISAS])
def test_each_int8_kernel_equals_the_spec_bit_for_bit(
    bundles, monkeypatch, tmp_path, flags, isa, runs
) -> None:
    if not runs:
        pytest.skip(f"this CPU cannot run the {isa} kernel")
    monkeypatch.setenv("RNNEDGE_CFLAGS", flags)
    monkeypatch.setenv("RNNEDGE_CACHE_DIR", str(tmp_path))
    xs = _sequence(300)
    for kind, path in bundles.items():
        m = rnnedge.load(path, backend="native", precision="int8")
        lib = ctypes.CDLL(str(m.backend.library))
        assert _isa(lib) == isa, f"{flags}: built the {_isa(lib)} kernel"
        got = m.stream().run(xs)
        want = rnnedge.load(path, backend="numpy", precision="int8").stream().run(xs)
        assert np.array_equal(got, want), f"{kind} {isa}: native int8 != numpy spec"


def _isa(lib: ctypes.CDLL) -> str:
    return ctypes.string_at(
        ctypes.addressof(ctypes.c_char.in_dll(lib, "rnnedge_gemv_isa"))
    ).decode()


def test_float_step_within_1e6_of_the_numpy_spec_over_1000_steps(bundles) -> None:
    xs = _sequence(1000)
    for kind, path in bundles.items():
        a = rnnedge.load(path, backend="native", precision="float").stream()
        b = rnnedge.load(path, backend="numpy", precision="float").stream()
        for t, x in enumerate(xs):
            ya, yb = a.step(x), b.step(x)
            err = np.max(np.abs(ya - yb)) / max(float(np.max(np.abs(yb))), 1e-3)
            assert err <= 1e-6, f"{kind} step {t}: relative error {err:.2e}"
            ha, hb = a.state, b.state
            for k in ha:
                assert np.max(np.abs(ha[k] - hb[k])) <= 1e-6, f"{kind} step {t}: state {k}"


EXP_C = """
void vexp(const float *x, float *y, int n) { for (int i = 0; i < n; i++) y[i] = rn_vexp(x[i]); }
void vsig(const float *x, float *y, int n) { for (int i = 0; i < n; i++) y[i] = rn_sigmoid(x[i]); }
void vtanh(const float *x, float *y, int n) { for (int i = 0; i < n; i++) y[i] = rn_tanh(x[i]); }
"""


@pytest.fixture(scope="module")
def math_lib(tmp_path_factory):
    work = tmp_path_factory.mktemp("math")
    (work / "m.c").write_text(PRELUDE + GEMV + EXP_C)
    cc = native_build.compiler()[0]
    cmd = [cc, *native_build.flags(), str(work / "m.c"), "-o", str(work / "m.so"), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(work / "m.so"))


def _apply(lib: ctypes.CDLL, fn: str, x: np.ndarray) -> np.ndarray:
    y = np.empty_like(x)
    getattr(lib, fn)(x.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p), x.size)
    return y


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(1)
    edges = [0.0, -0.0, 88.72283, 88.72284, -103.97207, -103.97209, -87.0, -88.5, 1e-30, 40.0]
    return np.concatenate(
        [rng.uniform(-110, 90, 400_000), rng.standard_normal(400_000) * 3, edges]
    ).astype(np.float32)


@pytest.mark.skipif(
    not (X86 and "avx2" in CPU_FLAGS and "fma" in CPU_FLAGS),
    reason="numpy's own SIMD exp runs on x86 with AVX2+FMA3 or AVX-512F",
)
def test_vectorised_exp_and_sigmoid_are_numpys_bit_for_bit(math_lib) -> None:
    from rnnedge.runtime.ops import sigmoid

    x = _inputs()
    with np.errstate(over="ignore"):
        assert np.array_equal(_apply(math_lib, "vexp", x), np.exp(x))
    assert np.array_equal(_apply(math_lib, "vsig", x), sigmoid(x).astype(np.float32))


def test_tanh_within_3e7_relative(math_lib) -> None:
    x = np.concatenate([_inputs(), np.float32([np.nan])])
    got, want = _apply(math_lib, "vtanh", x), np.tanh(x.astype(np.float64))
    assert np.isnan(got[-1])
    rel = np.abs(got[:-1] - want[:-1]) / np.maximum(np.abs(want[:-1]), 1e-30)
    assert rel.max() <= 3e-7, f"tanh: {rel.max():.2e} at x = {x[np.argmax(rel)]}"


@pytest.mark.slow
@pytest.mark.parametrize("march", ["-march=x86-64", "-march=x86-64-v3", "-march=native"])
def test_every_kernel_compiles_warning_free(bundles, tmp_path, march) -> None:
    if not X86:
        pytest.skip("x86 flags")
    src = Path(bundles["gru"]) / "model.int8.c"
    for cc in ("gcc", "clang"):
        if shutil.which(cc) is None:
            continue
        cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-O2", march, "-c"]
        out = subprocess.run(
            [*cmd, "-I", str(src.parent), str(src), "-o", str(tmp_path / "m.o")],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0 and not out.stderr, f"{cc} {march}:\n{out.stderr}"


@pytest.mark.parametrize("name", ["model.c", "model.int8.c"])
def test_every_constant_array_starts_on_a_cache_line(bundles, name) -> None:
    # a 64-byte vector load of a 32-byte aligned weight array spans two cache lines: the
    # float GRU 40 -> 128 step measured 6.4 instead of 3.9 us when the arrays fell that way
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) lists the library's symbols")
    src = Path(bundles["gru"]) / name
    header = src.with_suffix(".h")
    lib = native_build.build(src.read_bytes(), header.read_bytes(), src.name, header.name)
    out = subprocess.run(["nm", "-S", str(lib)], capture_output=True, text=True, check=True)
    arrays = {
        parts[3]: int(parts[0], 16)
        for parts in (line.split() for line in out.stdout.splitlines())
        if len(parts) == 4 and parts[2] in "rR" and parts[3].startswith("k")
    }
    assert len(arrays) >= 3
    assert {k: a % 64 for k, a in arrays.items() if a % 64} == {}
