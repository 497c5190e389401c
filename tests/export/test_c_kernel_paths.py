"""The token models' hot kernels in the generated C take their fast paths and keep the spec's
numbers (the native step of Mamba-1 / RWKV-4 at 4 x 256 was slower than LiteRT; docs/boards.md):

- a broadcast elementwise op ([512, 1] x [512, 16], [16] over [512, 16]) computes each input's
  index from nested loop counters, not from an index array read per element (a scalar gather
  that does not vectorise), and equals numpy bit for bit;
- exp is numpy's own vectorisable float32 algorithm (rn_vexp), not libm's scalar expf;
- softplus's log1p is the vectorisable rn_log1p, within float32 rounding of numpy.

Each case is a one-node Graph built here, compiled with the native backend's flags and called
through ctypes, against the numpy executor (the spec)."""

from __future__ import annotations

import ctypes
import platform
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.c import emit_c
from rnnedge.export.c.emitter import broadcast_loops
from rnnedge.runtime.backends import native_build
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph, Node, TensorSpec

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="needs a C compiler")
CPU_FLAGS = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
NUMPY_EXP = platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= set(CPU_FLAGS)


def _graph(op: str, shapes: list[tuple[int, ...]], attrs: dict | None = None) -> Graph:
    ins = tuple(TensorSpec(name=f"x{j}", shape=s) for j, s in enumerate(shapes))
    out = tuple(np.broadcast_shapes(*shapes))
    node = Node(op=op, inputs=tuple(t.name for t in ins), outputs=("y",), attrs=attrs or {})
    return Graph(
        inputs=ins, outputs=(TensorSpec(name="y", shape=out),), nodes=(node,), constants={}
    )


def _run_c(graph: Graph, feeds: list[np.ndarray], tmp_path: Path) -> tuple[np.ndarray, str]:
    files = emit_c(graph)
    source = files["model.c"]
    lib_path = tmp_path / "model.so"
    cc = native_build.compiler()[0]
    native_build.compile_shared(
        cc, native_build.flags(), source, "model.c", lib_path, {"model.h": files["model.h"]}
    )
    lib = ctypes.CDLL(str(lib_path))
    ws_bytes = ctypes.c_long.in_dll(lib, "rnnedge_workspace_bytes").value
    ws = np.zeros(max(ws_bytes, 1) + 64, np.uint8)
    xs = [np.ascontiguousarray(x, np.float32) for x in feeds]
    y = np.zeros(graph.outputs[0].shape, np.float32)
    ins = (ctypes.c_void_p * len(xs))(*[x.ctypes.data for x in xs])
    outs = (ctypes.c_void_p * 1)(y.ctypes.data)
    base = ws.ctypes.data
    aligned = ctypes.c_void_p(base + (-base) % 64)
    assert lib.rnnedge_step(ins, outs, aligned) == 0
    return y, source.decode()


def _spec(graph: Graph, feeds: list[np.ndarray]) -> np.ndarray:
    return Executor(graph).run({f"x{j}": x for j, x in enumerate(feeds)})["y"]


def _step_body(source: str) -> str:
    return source.split("int rnnedge_step(const float", 1)[1].split("int rnnedge_step_n", 1)[0]


BROADCASTS = [
    ("mul", [(1, 512, 1), (512, 16)]),  # Mamba's dt x A, per channel over the state
    ("mul", [(512, 16), (16,)]),  # and B over the channels
    ("add", [(2, 3, 4), (3, 1)]),
    ("maximum", [(4,), (2, 3, 4)]),
    ("sub", [(5, 1, 3), (1, 4, 1)]),
    ("div", [(1, 7), (6, 1)]),
]


@pytest.mark.parametrize(("op", "shapes"), BROADCASTS, ids=[f"{o}{s}" for o, s in BROADCASTS])
def test_broadcast_elementwise_uses_loops_and_equals_numpy(op, shapes, tmp_path) -> None:
    rng = np.random.default_rng(0)
    feeds = [(rng.standard_normal(s) + 2.0).astype(np.float32) for s in shapes]
    g = _graph(op, shapes)
    got, source = _run_c(g, feeds, tmp_path)
    assert np.array_equal(got, _spec(g, feeds))
    assert "broadcast index" not in source  # no index array: computed from the loop counters
    assert "const int i = " in _step_body(source)


def test_broadcast_loops_merge_dims_that_vary_alike() -> None:
    heads, index = broadcast_loops([(1, 512, 1), (512, 16)], (1, 512, 16))
    assert len(heads) == 3 and index == ["i0", "i0 * 16 + i1"]
    heads, index = broadcast_loops([(6, 4, 5), (4, 1)], (6, 4, 5))
    assert index == ["i0 * 20 + i1 * 5 + i2", "i1"]


def test_whole_and_scalar_inputs_keep_one_flat_loop() -> None:
    assert broadcast_loops([(2, 3, 4), (1,), ()], (2, 3, 4)) is None


def test_exp_is_numpys_vectorised_exp(tmp_path) -> None:
    x = np.concatenate(
        [np.linspace(-110, 90, 4000), np.random.default_rng(1).standard_normal(4000) * 3]
    ).astype(np.float32)
    g = _graph("exp", [x.shape])
    got, source = _run_c(g, [x], tmp_path)
    body = _step_body(source)
    assert "rn_vexp(a0)" in body and "expf(" not in body
    with np.errstate(over="ignore"):
        want = _spec(g, [x])
    if NUMPY_EXP:  # numpy's own SIMD exp runs here: the same algorithm, bit for bit
        assert np.array_equal(got, want)
    finite = np.isfinite(want) & (want > 1e-30)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-6)


def test_softplus_log1p_is_vectorisable_and_within_float32_rounding(tmp_path) -> None:
    x = np.concatenate(
        [np.linspace(-120, 30, 6000), np.random.default_rng(2).standard_normal(6000) * 4]
    ).astype(np.float32)
    g = _graph("softplus", [x.shape], {"beta": 1.0, "threshold": 20.0})
    got, source = _run_c(g, [x], tmp_path)
    body = _step_body(source)
    assert "rn_log1p01(" in body and "log1pf(" not in body
    want = np.log1p(np.exp(-np.abs(x.astype(np.float64)))) + np.maximum(x, 0)
    want = np.where(x > 20, x, want)
    # numpy's own float32 softplus is itself ~2 ulp from the exact value; so is the C
    np.testing.assert_allclose(got, want, rtol=3e-7, atol=1e-38)  # denormals: no relative accuracy
    np.testing.assert_allclose(got, _spec(g, [x]), rtol=5e-7, atol=1e-38)


X86 = platform.machine() in ("x86_64", "AMD64")
WQ_BUILDS = [  # (flags, whether this CPU runs it): the AVX-512, AVX2 and plain-C paths
    ("-O3 -march=native", True),
    ("-O3 -march=x86-64-v3", X86 and "avx2" in CPU_FLAGS),
    ("-O2 -march=x86-64", X86),
]
WQ_SHAPES = [(37, 64 * 2 + 13), (256, 1024), (5, 3), (64, 192), (40, 64)]


@pytest.mark.parametrize(("flags", "runs"), WQ_BUILDS, ids=["native", "avx2", "c"])
def test_weight_only_gemv_is_the_plain_loop_bit_for_bit(flags, runs, tmp_path) -> None:
    """rn_gemv_wq (the weight-only linear) on every path computes exactly the loop the spec's
    order defines: y[n] = (y[n] + x[k] * ((float)w[k][n] * s[n])) for k in order, float32."""
    if not runs:
        pytest.skip("this CPU cannot run the build")
    from rnnedge.export.c.prelude import PRELUDE
    from rnnedge.export.c.simd import GEMV

    wrap = (
        "void wq(const float *x, const int8_t *w, const float *s, int k, int n, float *y)"
        " { rn_gemv_wq(x, w, s, k, n, y); }\n"
    )
    (tmp_path / "wq.c").write_text(PRELUDE + GEMV + wrap)
    cc = native_build.compiler()[0]
    opts = (*flags.split(), *native_build.FIXED_FLAGS)
    cmd = [cc, *opts, str(tmp_path / "wq.c"), "-o", str(tmp_path / "wq.so"), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    lib = ctypes.CDLL(str(tmp_path / "wq.so"))
    rng = np.random.default_rng(4)
    for k, n in WQ_SHAPES:
        x = rng.standard_normal(k).astype(np.float32)
        w = rng.integers(-127, 128, (k, n)).astype(np.int8)
        s = (rng.uniform(1e-4, 1e-2, n)).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        want = y.copy()
        for j in range(k):
            want = want + x[j] * (w[j].astype(np.float32) * s)
        got = y.copy()
        ptr = ctypes.c_void_p
        lib.wq(x.ctypes.data_as(ptr), w.ctypes.data_as(ptr), s.ctypes.data_as(ptr), k, n,
               got.ctypes.data_as(ptr))  # fmt: skip
        assert np.array_equal(got, want), f"K {k} x N {n}: {np.abs(got - want).max()}"
