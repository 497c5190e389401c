"""The float weights of the generated C in column panels (export/c/panels.py pack_panels, read
by its rn_gemv and gemm.py's rn_gemm through rn_panel): every panel kind (256, 128,
32, 16, and the last narrower than 16, kept [width][K] for rn_gemv_narrow's dot products)
in every x86 build (AVX-512, AVX2 + FMA, plain C): rn_gemv within float rounding of numpy's
product, and rn_gemm's rows bit for bit rn_gemv's (the batched step's contract)."""

from __future__ import annotations

import ctypes
import platform
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.c.gemm import GEMM
from rnnedge.export.c.panels import PANELS, pack_panels, panel_widths
from rnnedge.export.c.prelude import PRELUDE
from rnnedge.export.c.simd import GEMV
from rnnedge.runtime.backends import native_build

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="needs a C compiler")

CPU_FLAGS = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
X86 = platform.machine() in ("x86_64", "AMD64")
BUILDS = [
    ("-O2 -march=x86-64", X86),
    ("-O3 -march=x86-64-v3", X86 and "avx2" in CPU_FLAGS and "fma" in CPU_FLAGS),
    ("-O3 -march=native", True),
]
# N: 471 = 256 + 128 + 32 + 32 + 16 + 7, 600 = 2 x 256 + 32 + 32 + 16 + 8, 10 (a head), 16, 37
SHAPES = [(471, 40), (600, 129), (10, 128), (16, 7), (37, 33), (384, 128)]

HARNESS = r"""
void t_gemv(const float *x, const float *wt, const float *b, int kk, int nn, float *y)
{
    for (int n = 0; n < nn; n++) y[n] = b[n];
    rn_gemv(x, wt, kk, nn, y);
}
void t_gemm(const float *x, const float *wt, const float *b, int m, int kk, int nn, float *y,
    float *xt)
{
    const float *xs[64];
    float *ys[64];
    for (int r = 0; r < m; r++) xs[r] = x + (long)r * kk, ys[r] = y + (long)r * nn;
    rn_gemm(xs, ys, m, wt, b, kk, nn, 64, xt);
}
"""


def test_panel_widths_cover_every_column_in_rn_panel_order() -> None:
    assert panel_widths(471) == [256, 128, 32, 32, 16, 7]
    assert panel_widths(600) == [256, 256, 32, 32, 16, 8]
    assert panel_widths(10) == [10] and panel_widths(384) == [256, 128] and panel_widths(0) == []
    w = np.arange(37 * 5, dtype=np.float32).reshape(37, 5)  # [N, K]
    p = pack_panels(w)
    # the last panel (columns 32..36, width 5 < 16) is [5][K]: its rows are w's rows
    assert np.array_equal(p[32 * 5 :].reshape(5, 5), w[32:37])
    assert np.array_equal(p[:32], w[:32, 0]) and np.array_equal(p[32:64], w[:32, 1])


@pytest.fixture(scope="module", params=[b[0] for b in BUILDS])
def lib(request, tmp_path_factory):
    flags = request.param
    if not dict(BUILDS)[flags]:
        pytest.skip(f"this CPU does not run {flags}")
    work = tmp_path_factory.mktemp("panels")
    (work / "p.c").write_text(PRELUDE + PANELS + GEMV + GEMM + HARNESS)
    cc = native_build.compiler()[0]
    fixed = [f for f in native_build.flags() if not f.startswith(("-O", "-march"))]
    cmd = [cc, *flags.split(), *fixed, str(work / "p.c"), "-o", str(work / "p.so"), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(work / "p.so"))


def _p(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize(("nn", "kk"), SHAPES)
def test_gemv_and_gemm_read_every_panel(lib, nn, kk) -> None:
    rng = np.random.default_rng(nn + kk)
    w = rng.standard_normal((nn, kk)).astype(np.float32)
    b = rng.standard_normal(nn).astype(np.float32)
    m = 19  # 8-row tiles, 4-row tiles and single rows
    x = rng.standard_normal((m, kk)).astype(np.float32)
    wt = pack_panels(w)
    want = x.astype(np.float64) @ w.T.astype(np.float64) + b
    single = np.zeros((m, nn), np.float32)
    for r in range(m):
        lib.t_gemv(_p(x[r]), _p(wt), _p(b), kk, nn, _p(single[r]))
    scale = np.abs(x).astype(np.float64) @ np.abs(w.T).astype(np.float64) + np.abs(b)
    assert np.max(np.abs(single - want) / scale) < kk * 1.2e-7
    batched = np.zeros((m, nn), np.float32)
    lib.t_gemm(_p(x), _p(wt), _p(b), m, kk, nn, _p(batched), _p(np.zeros(4 * kk, np.float32)))
    assert np.array_equal(batched, single)
