"""The native backend (issue 18): the bundle's generated C, built with the system compiler.

Float parity with PyTorch on the whole zoo runs in tests/e2e/test_parity.py (native is one of
available_backends()). Here: int8 equals the numpy integer spec bit for bit over hundreds of
steps with the state carried, streams(8) equals eight separate streams, and the ways loading
can fail say so in one line."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from helpers import assert_close, zoo_int8_exporter
from models import ZOO, build
from op_models import MODELS as OP_MODELS
from op_models import VOCAB

import rnnedge
from rnnedge.errors import BackendError
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.backends import native_build, open_backend
from rnnedge.runtime.backends.native_backend import NativeBackend
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.graph import TensorSpec
from rnnedge.runtime.quant.plan import QuantPlan

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="needs a C compiler")

STEPS = 300
# the op-rich ones: GRU; LSTM (its float cell is a float island); conv1d, layer_norm, gelu,
# pad, transpose islands; mean, pow, sqrt, concat, slices
FAST = ["gru", "lstm_2layer", "front_end", "math_head"]


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    return zoo_int8_exporter(tmp_path_factory, steps=100, count=8)


def _outputs(y, stream) -> list[np.ndarray]:
    ys = list(y) if isinstance(y, tuple) else [y]
    return ys + [stream.state[k] for k in sorted(stream.state)]


def _check_int8_bit_exact(path) -> None:
    """Every int8 tensor bit for bit; a tensor the plan keeps float (a float island, e.g. an
    LSTM cell state fed by a float tanh) within 1e-6: C's tanh and numpy's differ in ulps."""
    native = rnnedge.load(path, backend="native", precision="int8").stream()
    spec = rnnedge.load(path, backend="numpy", precision="int8").stream()
    bundle = read_bundle(path)
    kept_float = {t.tensor for t in QuantPlan.from_json(bundle.files["quant.json"]).left_float}
    names = [o.name for o in bundle.graph.outputs]
    rng = np.random.default_rng(7)
    shape = bundle.graph.inputs[0].shape
    for t in range(STEPS):
        x = (2 * rng.standard_normal(shape)).astype(np.float32)  # beyond the calibration too
        a, b = _named(native.step(x), native, names), _named(spec.step(x), spec, names)
        for name, v in b.items():
            what = f"{path.name} step {t}: {name}, native int8 vs numpy spec"
            if name in kept_float:
                assert_close(a[name], v, what, tol=1e-6)
            else:
                assert np.array_equal(a[name], v), what


def _named(y, stream, output_names: list[str]) -> dict[str, np.ndarray]:
    ys = list(y) if isinstance(y, tuple) else [y]
    return {**dict(zip(output_names, ys)), **stream.state}


@pytest.mark.parametrize("name", FAST)
def test_int8_equals_numpy_spec_bit_for_bit(int8_bundle, name) -> None:
    _check_int8_bit_exact(int8_bundle(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ZOO if n not in FAST])
def test_int8_equals_numpy_spec_bit_for_bit_whole_zoo(int8_bundle, name) -> None:
    _check_int8_bit_exact(int8_bundle(name))


@pytest.mark.parametrize("precision", ["float", "int8"])
def test_streams_8_equal_eight_single_streams(int8_bundle, zoo_bundle, precision) -> None:
    # float on a time-first model: its batch axis is 1, not 0
    path = zoo_bundle("gru_2layer_time_first")[0] if precision == "float" else int8_bundle("gru")
    many = rnnedge.load(path, backend="native", precision=precision).streams(8)
    ref_model = rnnedge.load(path, backend="numpy", precision=precision)
    singles = [ref_model.stream() for _ in range(8)]
    spec = ref_model.bundle.graph.inputs[0]
    rng = np.random.default_rng(3)
    prev = kept = None
    for t in range(200):
        xs = [rng.standard_normal(spec.shape).astype(np.float32) for _ in range(8)]
        got = many.step(np.concatenate(xs, axis=spec.batch_axis))
        if prev is not None:  # an output the caller holds is never overwritten by a step
            np.testing.assert_array_equal(prev, kept)
        prev, kept = got, got.copy()
        want = np.concatenate([s.step(x) for s, x in zip(singles, xs)], axis=spec.batch_axis)
        if precision == "int8":
            assert np.array_equal(got, want), f"streams(8) int8 step {t}"
        else:
            assert_close(got, want, f"streams(8) float step {t}", tol=1e-6)
    for k, s in enumerate(singles):
        for name, v in s.state.items():
            assert_close(many.state(many.ids[k])[name], v, f"stream {k} state {name}", tol=1e-6)


def test_auto_prefers_native(zoo_bundle) -> None:
    path, _, _ = zoo_bundle("gru")
    assert rnnedge.load(path, backend="auto").backend_name == "native"


def test_no_compiler_is_one_line_naming_what_to_install(zoo_bundle, monkeypatch, tmp_path) -> None:
    path, _, _ = zoo_bundle("gru")
    monkeypatch.setenv("RNNEDGE_CACHE_DIR", str(tmp_path))  # nothing cached to fall back on
    monkeypatch.setattr(native_build, "compiler", lambda: None)
    with pytest.raises(BackendError, match=r"apt install gcc") as e:
        rnnedge.load(path, backend="native")
    assert "\n" not in str(e.value)
    # auto falls back to the next backend
    assert rnnedge.load(path, backend="auto").backend_name != "native"


def test_bundle_without_c_is_refused_and_auto_falls_back(zoo_bundle) -> None:
    path, _, _ = zoo_bundle("gru")
    b = read_bundle(path)
    old = dataclasses.replace(
        b, files={k: v for k, v in b.files.items() if not k.startswith("model.c")}
    )
    with pytest.raises(BackendError, match=r"has no model\.c"):
        NativeBackend(old, "float")
    assert open_backend(old, "auto", "float").name != "native"


def test_library_is_built_once_and_cached(zoo_bundle, monkeypatch, tmp_path) -> None:
    path, _, _ = zoo_bundle("rnn_cell_relu")
    monkeypatch.setenv("RNNEDGE_CACHE_DIR", str(tmp_path))
    first = rnnedge.load(path, backend="native").backend.library
    stamp = first.stat().st_mtime_ns
    second = rnnedge.load(path, backend="native").backend.library
    assert first == second and first.parent == tmp_path
    assert second.stat().st_mtime_ns == stamp


def test_int8_dynamic_follows_the_numpy_spec(tmp_path) -> None:
    # int8 weights, float activations: the planned linears do the spec's arithmetic, but the
    # float ops around them (tanh, sigmoid) round as libm does, an ulp from numpy, and an ulp
    # in x can move x's per-call uint8 rounding by one step (measured: 2.6e-4 once in 300
    # steps); a wrong kernel is off by orders more
    model, example = build("lstm_2layer")
    path = export_bundle(model, example, tmp_path / "d.rnnedge", quantize="int8-dynamic")
    native = rnnedge.load(path, backend="native", precision="int8-dynamic").stream()
    spec = rnnedge.load(path, backend="numpy", precision="int8-dynamic").stream()
    rng = np.random.default_rng(5)
    for t in range(STEPS):
        x = rng.standard_normal((1, 1, 8)).astype(np.float32)
        for u, v in zip(_outputs(native.step(x), native), _outputs(spec.step(x), spec)):
            assert_close(u, v, f"int8-dynamic step {t}", tol=2e-3)


def _op_input(rng, spec, steps: int) -> np.ndarray:
    """A sequence for one op model: N(0, 2) (beyond the calibration), or uniform token ids."""
    if spec.dtype in ("int32", "int64"):
        return rng.integers(0, VOCAB, (steps, *spec.shape)).astype(spec.dtype)
    return (2 * rng.standard_normal((steps, *spec.shape))).astype(np.float32)


@pytest.fixture(scope="module")
def op_bundle(tmp_path_factory):
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            make, example, _ = OP_MODELS[name]
            torch.manual_seed(0)
            model, ex = make().eval(), example()
            x0 = ex[0] if isinstance(ex, tuple) else ex
            rng = np.random.default_rng(1)
            spec = dataclasses.replace(read_spec_of(x0), shape=tuple(x0.shape))
            calib = [_op_input(rng, spec, 200) for _ in range(8)]
            out = tmp_path_factory.mktemp("native_ops") / f"{name}.rnnedge"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[name] = export_bundle(model, ex, out, quantize="int8", calibration=calib)
        return cache[name]

    return get


def read_spec_of(x0) -> TensorSpec:
    return TensorSpec(name="x", shape=tuple(x0.shape), dtype=str(x0.dtype).removeprefix("torch."))


# op models whose int8 float islands are only softmax/log_softmax/gather/elementwise ops: the C
# equals numpy bit for bit. The others end in a float linear/matmul island (numpy sums with
# BLAS in its own order) or a softplus (numpy's log1p is SVML's): within float32 rounding
BIT_EXACT = ["softmax-head", "log_softmax-head", "char-lm-int64", "char-lm-int32"]


@pytest.mark.parametrize("name", list(OP_MODELS))
def test_op_models_int8_follow_numpy_spec_and_float_close(op_bundle, name) -> None:
    # softmax, log_softmax, softplus, matmul, gather (an int8 per-row table) over 300 steps
    # with the state carried; float within 1e-5 of numpy
    path = op_bundle(name)
    spec = read_bundle(path).graph.inputs[0]
    xs = _op_input(np.random.default_rng(7), spec, STEPS)
    for precision in ("int8", "float"):
        native = rnnedge.load(path, backend="native", precision=precision).stream()
        ref = rnnedge.load(path, backend="numpy", precision=precision).stream()
        for t, x in enumerate(xs):
            a, b = _outputs(native.step(x), native), _outputs(ref.step(x), ref)
            for u, v in zip(a, b):
                if precision == "int8" and name in BIT_EXACT:
                    assert np.array_equal(u, v), f"{name} step {t}: native int8 != numpy spec"
                else:
                    assert_close(u, v, f"{name} {precision} step {t}", tol=1e-5)


def test_unchecked_token_id_outside_the_table_is_refused_by_the_c(op_bundle) -> None:
    # a checked stream refuses the id before the call; unchecked, the C's bounds check does
    path = op_bundle("char-lm-int64")
    s = rnnedge.load(path, backend="native").stream(checked=False)
    s.step(np.array([[VOCAB - 1]], np.int64))
    with pytest.raises(BackendError, match="token id is outside its embedding table"):
        s.step(np.array([[VOCAB]], np.int64))
    with pytest.raises(BackendError, match="the model takes int64"):
        s.step(np.array([[1]], np.int32))  # unchecked: no conversion, so the dtype is refused
    many = rnnedge.load(path, backend="native").streams(2, checked=False)
    with pytest.raises(BackendError, match="token id is outside its embedding table"):
        many.step(np.array([[1], [-1]], np.int64))
