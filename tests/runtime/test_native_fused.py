"""export/c/fused.py's kernels equal what they replace, on every input class that matters:
rq_lut_s8 (AVX-512 VBMI vpermi2b when the CPU has it, else the scalar loop) is table[x + 128]
for all 256 int8 values at lengths with and without a tail; rq_quantize32 is the int64
rq_quantize for finite values, halves, NaN, +-inf and values far outside int32, at int8 and
int16 ranges. Whole-model bit-exactness runs in test_native.py and test_native_kernels.py."""

from __future__ import annotations

import ctypes
import platform
import subprocess

import numpy as np
import pytest

from rnnedge.export.c.fused import FUSED
from rnnedge.export.c.prelude import PRELUDE
from rnnedge.export.c.simd import BLOCK_N, GEMV, pack_int8
from rnnedge.runtime.backends import native_build

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="needs a C compiler")

TEST_C = """
void lut(const int8_t *x, int8_t *y, int n, const int8_t *t) { rq_lut_s8(x, y, n, t); }
void q64(const float *x, int32_t *y, int n, float s, int zp, int lo, int hi)
{ for (int i = 0; i < n; i++) y[i] = (int32_t)rq_quantize(x[i], s, zp, lo, hi); }
void q32(const float *x, int32_t *y, int n, float s, int zp, int lo, int hi)
{ for (int i = 0; i < n; i++) y[i] = rq_quantize32(x[i], s, zp, lo, hi); }
void lin(const int8_t *x, int zp, const int8_t *w, const int32_t *rs, int nb, int k4,
    const int32_t *b, const float *s, float lo, float hi, int yzp, int n, int8_t *y,
    int32_t *acc, int32_t *tmp)
{ rq_linear_s8(x, zp, w, rs, nb, k4, b, s, lo, hi, yzp, n, y, acc, tmp); }
void gemv(const int8_t *x, int zp, const int8_t *w, const int32_t *rs, int nb, int k4,
    int32_t *acc, int32_t *tmp)
{ rq_gemv_s8(x, zp, w, rs, nb, k4, acc, tmp); }
"""
MARCHES = ["-march=native"] + (["-march=x86-64-v3"] if platform.machine() == "x86_64" else [])


@pytest.fixture(scope="module", params=MARCHES)
def lib(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("fused")
    (work / "f.c").write_text(PRELUDE + GEMV + FUSED + TEST_C)
    cc = native_build.compiler()[0]
    flags = [f for f in native_build.flags() if not f.startswith("-march")]
    cmd = [cc, request.param, *flags, str(work / "f.c"), "-o", str(work / "f.so"), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(work / "f.so"))


def _p(a: np.ndarray) -> ctypes.c_void_p:
    return a.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize("n", [256, 64, 300, 7])
def test_lut_is_the_table_lookup(lib, n) -> None:
    rng = np.random.default_rng(n)
    table = rng.integers(-128, 128, 256).astype(np.int8)
    x = np.resize(np.arange(-128, 128, dtype=np.int8), n)
    rng.shuffle(x)
    y = np.empty(n, np.int8)
    lib.lut(_p(x), _p(y), n, _p(table))
    assert np.array_equal(y, table[x.astype(np.int32) + 128])


@pytest.mark.parametrize("lo,hi,zp", [(-128, 127, -6), (-128, 127, 3), (-32768, 32767, 0)])
def test_quantize32_equals_the_int64_quantize(lib, lo, hi, zp) -> None:
    rng = np.random.default_rng(0)
    scale = np.float32(0.0330853239)
    halves = (np.arange(-300, 300) + 0.5).astype(np.float32) * scale
    edges = [np.nan, np.inf, -np.inf, 1e30, -1e30, 3e9, -3e9, 0.0, -0.0, 1e-40]
    x = np.concatenate(
        [rng.standard_normal(100_000) * 5, halves, np.float32(edges), rng.uniform(-1e6, 1e6, 1000)]
    ).astype(np.float32)
    a, b = np.empty(x.size, np.int32), np.empty(x.size, np.int32)
    args = (x.size, ctypes.c_float(scale), zp, lo, hi)
    lib.q64(_p(x), _p(a), *args)
    lib.q32(_p(x), _p(b), *args)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("n,k", [(384, 40), (70, 128), (10, 13), (16, 4)])
def test_linear_requantizes_the_exact_sums_as_the_spec(lib, n, k) -> None:
    # y = clamp(rint(float32(acc + b) * s), lo, hi) + zp; acc = sum (x - x_zp) w, exact
    rng = np.random.default_rng(n + k)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    packed, nb, k4 = pack_int8(w)
    rows = np.zeros(nb * BLOCK_N, np.int32)
    rows[:n] = w.astype(np.int32).sum(axis=1)
    bias = rng.integers(-5000, 5000, n).astype(np.int32)
    # halves of 1 / 2 ** j give rint's ties; the wide ones saturate both ends
    scale = (rng.choice([0.5, 0.25, 2.0**-7, 2.0**-11, 0.1], n)).astype(np.float32)
    x_zp, y_zp, lo, hi = -3, 5, -128 - 5, 127 - 5
    acc, tmp = np.empty(nb * BLOCK_N, np.int32), np.empty(2 * k4, np.int32)
    for trial in range(20):
        x = np.zeros(4 * k4, np.int8)
        x[:k] = rng.integers(-128, 128, k)
        y = np.empty(n, np.int8)
        args = (_p(x), x_zp, _p(packed), _p(rows), nb, k4)
        lib.lin(*args, _p(bias), _p(scale), ctypes.c_float(lo), ctypes.c_float(hi), y_zp, n,
                _p(y), _p(acc), _p(tmp))  # fmt: skip
        sums = (x[:k].astype(np.int64) - x_zp) @ w.T.astype(np.int64)
        v = (sums + bias).astype(np.float32) * scale
        want = np.clip(np.rint(v), lo, hi).astype(np.int32) + y_zp
        assert np.array_equal(y.astype(np.int32), want), trial
        lib.gemv(*args, _p(acc), _p(tmp))
        assert np.array_equal(acc[:n], sums)
