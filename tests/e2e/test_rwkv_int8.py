"""A byte-level RWKV-4 (transformers RwkvForCausalLM) trained here on a generated text,
exported through hf-rwkv with full int8: perplexity within 1% of float on held-out text and
greedy generation identical to float for the first 50 of 200 tokens, on every backend; the
recurrence core (num/den/max) stays float and says why; the LM head after ln_out is int8 (its
logits at the calibrated range with headroom, the values it clips counted at export).
Measured numbers: docs/rwkv-mamba.md."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from rwkv_models import encode, make_text, train_char_rwkv

import rnnedge
from rnnedge.export.adapters import adapt
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime import available_backends
from rnnedge.runtime.generate import greedy
from rnnedge.runtime.quant.plan import QuantPlan

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow  # training takes minutes on 2 shared cores

PPL_TOL = 0.01
SAME_TOKENS = 50


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model = train_char_rwkv()
    step = adapt("hf-rwkv", model)
    calibration = [encode(make_text(300, 100 + i)) for i in range(8)]
    out = tmp_path_factory.mktemp("rwkv8") / "char.rnnedge"
    t0 = time.perf_counter()
    path = export_bundle(step, step.example(), out, quantize="int8", calibration=calibration)
    print(f"rwkv int8 export: {time.perf_counter() - t0:.0f} s")
    return path


def size_ratios(path) -> dict[str, float]:
    """int8 file / float file, per format (the C source: model.int8.c / model.c)."""
    pairs = {"onnx": "model{}.onnx", "tflite": "model{}.tflite", "c": "model{}.c"}
    size = lambda name: (path / name).stat().st_size  # noqa: E731
    return {k: size(f.format(".int8")) / size(f.format("")) for k, f in pairs.items()}


def perplexity(path, backend: str, precision: str, ids: np.ndarray) -> float:
    stream = rnnedge.load(path, backend=backend, precision=precision).stream()
    logits = np.asarray(stream.run(ids[:-1].reshape(-1, 1, 1)), np.float64).reshape(
        len(ids) - 1, -1
    )
    logits -= logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return float(np.exp(-logp[np.arange(len(ids) - 1), ids[1:]].mean()))


def test_int8_perplexity_within_one_percent_of_float(trained):
    held = encode(make_text(1500, 999))
    for backend in available_backends():
        f = perplexity(trained, backend, "float", held)
        q = perplexity(trained, backend, "int8", held)
        assert f < 3.0, f"{backend}: the model did not learn the text (ppl {f:.2f})"
        print(f"{backend}: perplexity float {f:.5f}, int8 {q:.5f}")
        assert q <= f * (1 + PPL_TOL), f"{backend}: int8 ppl {q:.4f} vs float {f:.4f}"


def test_int8_greedy_generation_matches_float(trained):
    prompt = encode("the old man ")
    for backend in available_backends():
        runs = {
            p: greedy(rnnedge.load(trained, backend=backend, precision=p), prompt, 200)
            for p in ("float", "int8")
        }
        same = next((i for i, (a, b) in enumerate(zip(*runs.values())) if a != b), 200)
        print(f"{backend}: int8 greedy text equals float for {same} of 200 tokens")
        assert runs["float"][:SAME_TOKENS] == runs["int8"][:SAME_TOKENS], backend


def test_int8_files_shrink_to_about_30_percent_of_float(trained):
    # the default budget keeps groups float for accuracy; their linears and the embedding
    # keep int8 weights (weight-only int8, quantize/weight_only.py): ONNX meets the issue's
    # 30%, and the C source does since it spells an int8 weight in 2.4 characters (64-bit
    # hex words) against 12.2 for a float. TFLite cannot at hidden 64 (docs/rwkv-mamba.md): a
    # float32 scale and an int64 zero point per int8 row (LiteRT wants both). Measured
    # 2026-12-07: 28.6%, 32.2%, 29.3% (the C source 37.7% with "-12, " per weight; before
    # weight-only 47%, 48%, 52%)
    ratios = size_ratios(trained)
    print("int8 / float file size: " + ", ".join(f"{k} {v:.1%}" for k, v in ratios.items()))
    assert ratios["onnx"] <= 0.30 and ratios["c"] <= 0.30, ratios
    assert ratios["tflite"] <= 0.33, ratios


def test_recurrence_core_stays_float_and_says_why(trained):
    plan = json.loads((trained / "quant.json").read_text())
    floats = {t["tensor"]: t.get("why", "") for t in plan["tensors"] if t["dtype"] == "float32"}
    for layer in (0, 1):
        for kind in ("att_num", "att_den", "att_max"):
            assert f"layers_{layer}_{kind}" in floats, f"layers_{layer}_{kind} is int8"
    assert "infinity" in floats["layers_0_att_max"]
    assert "accumulator" in floats["layers_0_att_den"]


def test_the_head_is_int8_and_its_clipping_is_measured(trained):
    plan = QuantPlan.from_json((trained / "quant.json").read_bytes())
    assert plan.weight("y") is not None and plan.activation("y").dtype == "int8"
    rec = json.loads((trained / "manifest.json").read_text())["int8_fidelity"]
    for split in rec["splits"].values():
        (y,) = [o for o in split["outputs"] if o["name"] == "y"]
        assert y["clipped_pct"] is not None  # measured, whatever it is
