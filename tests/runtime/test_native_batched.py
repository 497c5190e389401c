"""The batched native step (issue 18, streams): rnnedge_step_n runs each node once over up to
RNNEDGE_BATCH streams, the linears as matrix-matrix products (export/c/batched.py). Every
stream must get exactly what a single native stream gets (same sums in the same order), so
int8 equals the numpy integer spec bit for bit per stream and float stays within 1e-6 of the
numpy float spec, over 300 steps with the state carried and streams whose inputs differ."""

from __future__ import annotations

import ctypes
import itertools
import platform
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from models import ZOO, build
from op_models import MODELS as OP_MODELS
from op_models import VOCAB
from torch import nn

import rnnedge
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.backends import native_build
from rnnedge.runtime.backends.native_backend import from_streams, stacks, to_streams
from rnnedge.runtime.backends.runner import batch_shape
from rnnedge.runtime.graph import TensorSpec

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="needs a C compiler")

STEPS = 300


class Net(nn.Module):
    """K = 10 and H = 37: the packed int8 weights need padding, the float tiles a tail."""

    def __init__(self, kind: str, layers: int = 1) -> None:
        super().__init__()
        self.rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind](10, 37, layers, batch_first=True)
        self.head = nn.Linear(37, 5)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


MODELS = {
    "gru": (lambda: Net("gru"), lambda: torch.zeros(1, 1, 10)),
    "lstm": (lambda: Net("lstm"), lambda: torch.zeros(1, 1, 10)),
    "gru_stacked": (lambda: Net("gru", 2), lambda: torch.zeros(1, 1, 10)),
    "char-lm-int64": (OP_MODELS["char-lm-int64"][0], OP_MODELS["char-lm-int64"][1]),
}


def _inputs(rng: np.random.Generator, spec, steps: int, n: int) -> np.ndarray:
    """steps x (n streams along the spec's batch axis), every stream different."""
    shape = list(spec.shape)
    shape[spec.batch_axis] *= n
    if spec.dtype in ("int32", "int64"):
        return rng.integers(0, VOCAB, (steps, *shape)).astype(spec.dtype)
    return (1.5 * rng.standard_normal((steps, *shape))).astype(np.float32)


def _export(make, example, out, calib_steps: int = 60):
    torch.manual_seed(0)
    model, ex = make().eval(), example()
    x0 = ex[0] if isinstance(ex, tuple) else ex
    rng = np.random.default_rng(0)
    if x0.dtype in (torch.int32, torch.int64):
        calib = [rng.integers(0, VOCAB, (calib_steps, *x0.shape)) for _ in range(4)]
        calib = [c.astype(str(x0.dtype).removeprefix("torch.")) for c in calib]
    else:
        calib = [rng.standard_normal((calib_steps, *x0.shape)).astype(np.float32) for _ in range(4)]
    with warnings.catch_warnings():  # golden data beyond calibration: expected
        warnings.simplefilter("ignore")
        return export_bundle(model, ex, out, quantize="int8", calibration=calib)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            make, example = MODELS[name]
            cache[name] = _export(make, example, tmp_path_factory.mktemp("b") / f"{name}.rnnedge")
        return cache[name]

    return get


def _split(y: np.ndarray, axis: int, n: int) -> list[np.ndarray]:
    return np.split(np.asarray(y), n, axis=axis)


def _run_batched_and_singles(path, precision: str, n: int, steps: int, spec: bool = False):
    """Per step: the n streams' outputs from one streams(n), from n single native streams, and
    (spec=True) from the numpy spec's streams(n)."""
    native = rnnedge.load(path, backend="native", precision=precision)
    g = native.bundle.graph
    x_spec, y_ax = g.inputs[0], g.data_outputs[0].batch_axis
    many = native.streams(n)
    singles = [native.stream() for _ in range(n)]
    ref = rnnedge.load(path, backend="numpy", precision=precision).streams(n) if spec else None
    for t, x in enumerate(_inputs(np.random.default_rng(5), x_spec, steps, n)):
        xs = np.split(x, n, axis=x_spec.batch_axis)
        got = _split(many.step(x), y_ax, n)
        one = [s.step(xi) for s, xi in zip(singles, xs)]
        yield t, got, one, _split(ref.step(x), y_ax, n) if ref else []


@pytest.mark.parametrize("precision", ["int8", "float"])
@pytest.mark.parametrize("name", list(MODELS))
def test_batched_streams_equal_single_streams_and_the_spec(bundle, name, precision) -> None:
    path = bundle(name)
    for n in (3, 64):
        for t, got, one, want in _run_batched_and_singles(path, precision, n, STEPS, n == 3):
            for i in range(n):
                assert np.array_equal(got[i], one[i]), f"{name} {precision} n={n} step {t} #{i}"
            for i, w in enumerate(want):
                if precision == "int8":
                    assert np.array_equal(got[i], w), f"{name} int8 n={n} step {t}: != spec"
                else:  # the single step's own distance (tanh within 3e-7): 1.2e-6 measured
                    err = np.max(np.abs(got[i] - w)) / max(float(np.max(np.abs(w))), 1e-3)
                    assert err <= 2e-6, f"{name} float n={n} step {t}: {err:.2e} from spec"


@pytest.mark.parametrize("precision", ["int8", "float"])
def test_one_stream_through_the_batched_c_equals_the_single_step(bundle, precision) -> None:
    # streams(1) takes rnnedge_step; rnnedge_step_n(1, ...) is called here directly
    model = rnnedge.load(bundle("gru"), backend="native", precision=precision)
    lib = ctypes.CDLL(str(model.backend.library))
    g = model.bundle.graph
    ws = np.zeros(ctypes.c_long.in_dll(lib, "rnnedge_workspace_n_bytes").value + 64, np.uint8)
    wsp = ctypes.c_void_p(ws.ctypes.data + (-ws.ctypes.data % 64))
    state = [np.zeros(g.spec(s.input).shape, np.float32) for s in g.states]
    single = model.stream()
    for t, x in enumerate(_inputs(np.random.default_rng(2), g.inputs[0], STEPS, 1)):
        y = [np.zeros(o.shape, np.float32) for o in g.outputs]
        ins = (ctypes.c_void_p * 2)(*[a.ctypes.data for a in (x, *state)])
        outs = (ctypes.c_void_p * 2)(*[a.ctypes.data for a in y])
        assert lib.rnnedge_step_n(1, ins, outs, wsp) == 0
        state = y[1:]
        assert np.array_equal(y[0], single.step(x)), f"{precision} step {t}"


@pytest.mark.parametrize("precision", ["int8", "float"])
def test_streams_step_on_both_call_paths(bundle, monkeypatch, precision) -> None:
    # streams(n).step is one call of the extension (or the ctypes closure): the same numbers,
    # outputs the caller keeps (a later step never changes them), the Stream's input checks
    path, n = bundle("gru"), 64
    runs = {}
    for call in ("extension", "ctypes"):
        if call == "ctypes":
            monkeypatch.setenv("RNNEDGE_NATIVE_CALL", "ctypes")
        model = rnnedge.load(path, backend="native", precision=precision)
        if call not in model.backend.label:
            pytest.skip(f"no call extension here: {model.backend.call_reason}")
        many, loose = model.streams(n), model.streams(n, checked=False)
        xs = _inputs(np.random.default_rng(3), model.bundle.graph.inputs[0], 20, n)
        ys = [many.step(x) for x in xs]
        assert all(np.array_equal(a, loose.step(x)) for a, x in zip(ys, xs))
        assert not any(np.shares_memory(a, b) for a, b in itertools.pairwise(ys))
        bad = xs[0].copy()
        bad[5, 0, 3] = np.nan
        with pytest.raises(rnnedge.errors.InputError, match=r"finite|NaN|nan"):
            many.step(bad)
        with pytest.raises(rnnedge.errors.InputError):
            many.step(xs[0][:3])
        with pytest.raises(rnnedge.errors.BackendError):
            loose.step(xs[0][:3])
        assert np.array_equal(many.step(xs[0].astype(np.float64)), loose.step(xs[0]))
        runs[call] = ys
    for a, b in zip(runs["extension"], runs["ctypes"]):
        assert np.array_equal(a, b)


def test_stacked_streams_are_bound_as_they_are_only_when_they_lie_one_after_another() -> None:
    # (2, 1, 8) stacked along axis 1 interleaves the streams: the runner must copy, not bind
    rng = np.random.default_rng(0)
    for shape, axis, bound in (((1, 1, 8), 0, True), ((1, 1, 8), 1, True), ((2, 1, 8), 1, False)):
        spec = TensorSpec(name="x", shape=shape, batch_axis=axis)
        assert stacks(spec) is bound
        batched = rng.standard_normal(batch_shape(spec, 5)).astype(np.float32)
        c_layout = np.ascontiguousarray(to_streams(batched, spec, 5))  # the C's [n, *shape]
        assert np.array_equal(c_layout.ravel(), batched.ravel()) is bound
        assert np.array_equal(from_streams(c_layout, spec, 5), batched)


def test_the_batched_step_is_matrix_matrix(bundle) -> None:
    # each linear is one product over all streams, not the single step called per stream
    model = rnnedge.load(bundle("gru"), backend="native", precision="int8")
    # (a float head narrower than any tile goes straight to rn_gemm_rest: gemm.py)
    kernels = (("model.c", r"rn_gemm(_rest)?\("), ("model.int8.c", r"rq_gemm_s8\("))
    for c_name, kernel in kernels:
        source = model.bundle.files[c_name].decode()
        body = source[source.index("static int rn_step_b") : source.index("int rnnedge_step_n")]
        assert "rnnedge_step(" not in body
        assert len(re.findall(kernel, body)) == 3, f"{c_name}: GRU's two linears and the head"
        header = model.bundle.files[c_name[:-1] + "h"].decode()
        assert re.search(r"#define RNNEDGE_BATCH 64\b", header)
        assert re.search(r"#define RNNEDGE_WORKSPACE_N_BYTES \d+", header)


ALL = [("zoo", n) for n in ZOO] + [("op", n) for n in OP_MODELS]


@pytest.mark.slow  # every zoo and op model: every Graph op the C has, batched
@pytest.mark.parametrize(("kind", "name"), ALL, ids=[f"{k}-{n}" for k, n in ALL])
def test_every_model_batched_equals_single_streams(tmp_path, kind, name) -> None:
    if kind == "zoo":
        model, example = build(name)
        make, ex = (lambda: model), (lambda: example)
    else:
        make, ex = OP_MODELS[name][0], OP_MODELS[name][1]
    try:
        path = _export(make, ex, tmp_path / f"{name}.rnnedge")
    except rnnedge.errors.RnnedgeError as e:  # not every zoo model exports int8
        pytest.skip(f"{name}: {e}")
    try:
        rnnedge.load(path, backend="native").streams(5)
    except rnnedge.errors.StreamsError as e:  # a model whose tensors do not scale with batch
        pytest.skip(str(e))
    for precision in ("int8", "float"):
        if not (path / ("model.c" if precision == "float" else "model.int8.c")).exists():
            continue
        for t, got, one, _ in _run_batched_and_singles(path, precision, 5, 50):
            for i in range(5):
                assert np.array_equal(got[i], one[i]), f"{name} {precision} step {t} #{i}"


CPU_INFO = Path("/proc/cpuinfo")
CPU_FLAGS = CPU_INFO.read_text().split() if platform.machine() == "x86_64" else []


@pytest.mark.slow  # two more builds; the default run tests the build's own kernel
@pytest.mark.parametrize("flags", ["-O2 -march=x86-64", "-O3 -march=x86-64-v3"])
def test_each_x86_kernel_batched_equals_single(bundle, monkeypatch, tmp_path, flags) -> None:
    # the plain C and AVX2 tiles (2 rows per weight load, 7 streams: tiles and remainders)
    if not CPU_FLAGS or ("v3" in flags and "avx2" not in CPU_FLAGS):
        pytest.skip("needs an x86 CPU that runs these flags")
    monkeypatch.setenv("RNNEDGE_CFLAGS", flags)
    monkeypatch.setenv("RNNEDGE_CACHE_DIR", str(tmp_path))
    for precision in ("int8", "float"):
        for t, got, one, _ in _run_batched_and_singles(bundle("lstm"), precision, 7, 50):
            assert all(np.array_equal(a, b) for a, b in zip(got, one)), f"{precision} step {t}"
