"""`make bench-int8` (boards/sweeps/int8.py) at a tiny size: it runs end to end through the
command-line entry point and reports every row, with finite percentiles where it measured,
the reason where it could not, and what each peer file really holds. No timing thresholds."""

from __future__ import annotations

import json
import math

import pytest

from rnnedge.boards.peers import int8 as int8_peers
from rnnedge.boards.sweeps import int8 as int8_bench
from rnnedge.boards.sweeps.int8_config import CALLS, FILE_BACKENDS, PRECISIONS


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("int8_bench")
    cfg = int8_bench.Int8BenchConfig(
        kinds=("gru", "lstm"),
        hidden=(8,),
        steps=100,  # p99 needs 100 samples (boards/latency.MIN_SAMPLES)
        rounds=1,
        warmup=5,
        calib_sequences=4,  # the int8 exporter needs 4
        calib_steps=20,
        eval_steps=20,
        tf_python=None,
        work_dir=tmp / "work",
    )
    return int8_bench.run(cfg, lambda _msg: None)


def _rows(doc, **match):
    return [r for r in doc["rows"] if all(r[k] == v for k, v in match.items())]


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_every_rnnedge_backend_and_precision_has_a_row(doc, kind):
    rows = _rows(doc, kind=kind, who="rnnedge")
    got = [(r["backend"], r["precision"], r["call"]) for r in rows]
    assert sorted(got) == sorted(
        (b, p, c) for b in FILE_BACKENDS for p in PRECISIONS for c in CALLS
    )


def test_measured_rows_have_ordered_finite_percentiles_and_sizes(doc):
    measured = [r for r in doc["rows"] if r["unavailable"] is None]
    # float and int8-dynamic export today, so at least those rows and the ORT peers run
    assert len(measured) >= 2 * (2 * len(FILE_BACKENDS) + 4)
    for r in measured:
        lat = r["latency_us"]
        assert all(math.isfinite(lat[k]) and lat[k] > 0 for k in ("p50", "p90", "p99")), r
        assert lat["p50"] <= lat["p90"] <= lat["p99"], r
        assert r["file_bytes"] > 0 and r["ops"], r
        assert r["max_abs_err"] is not None and math.isfinite(r["max_abs_err"]), r


def test_unavailable_rows_say_why_and_carry_no_numbers(doc):
    for r in doc["rows"]:
        if r["unavailable"] is not None:
            assert r["unavailable"].startswith("not available: ")
            assert r["latency_us"] is None and r["vs_float"] is None


def test_litert_tf_peer_without_tensorflow_is_a_row_with_the_reason(doc):
    for kind in ("gru", "lstm"):
        (row,) = _rows(doc, kind=kind, name="litert TF-converter int8")
        assert "tensorflow not installed" in row["unavailable"]


def test_float_rows_compute_the_model_and_ratios_refer_to_float(doc):
    for r in _rows(doc, who="rnnedge", precision="float"):
        assert r["max_abs_err"] < 1e-4  # the error column compares against PyTorch float
        assert r["vs_float"] == pytest.approx(1.0)


def test_peer_files_list_what_was_quantized(doc):
    # quantize_dynamic reaches the decomposed cell's Gemms; the GRU op itself stays float
    (cell,) = _rows(doc, kind="gru", name="ort quantize_dynamic (cell)")
    assert cell["ops"].get("MatMulInteger", 0) >= 3
    (op,) = _rows(doc, kind="gru", name="ort quantize_dynamic (op)")
    assert op["ops"].get("GRU") == 1
    (lstm,) = _rows(doc, kind="lstm", name="ort quantize_dynamic (op)")
    assert lstm["ops"].get("com.microsoft.DynamicQuantizeLSTM") == 1
    (qdq,) = _rows(doc, kind="gru", name="ort quantize_static (cell)")
    assert qdq["ops"].get("QuantizeLinear", 0) > 0


def test_float_weight_peers_are_flagged_and_not_counted_as_int8(doc):
    # onnxruntime cannot quantize the GRU op: its op-form files keep float weights
    for name in ("ort quantize_dynamic (op)", "ort quantize_static (op)"):
        (row,) = _rows(doc, kind="gru", name=name)
        assert row["weights_float"], row
    (cell,) = _rows(doc, kind="gru", name="ort quantize_dynamic (cell)")
    assert not cell["weights_float"]
    int8_peers_ = [
        r for r in _rows(doc, kind="gru", who="peer", backend="onnxruntime") if r["latency_us"]
    ]
    best = min(r["latency_us"]["p50"] for r in int8_peers_ if not r["weights_float"])
    for r in _rows(doc, kind="gru", who="rnnedge", backend="onnxruntime"):
        if r["latency_us"]:
            assert r["vs_best_peer"] == pytest.approx(r["latency_us"]["p50"] / best)


def test_raw_rows_compare_to_raw_float(doc):
    for r in _rows(doc, who="rnnedge", call="raw", unavailable=None):
        (flt,) = _rows(doc, kind=r["kind"], who="rnnedge", backend=r["backend"], call="raw",
                       precision="float")  # fmt: skip
        assert r["vs_float"] == pytest.approx(r["latency_us"]["p50"] / flt["latency_us"]["p50"])


def test_report_shows_every_row(doc):
    from rnnedge.boards.sweeps.int8_report import format_table

    text = format_table(doc)
    for r in doc["rows"]:
        assert r["name"] in text
    assert "goals" in text


def test_has_tensorflow_names_a_python_without_it():
    assert int8_peers.has_tensorflow(None).startswith("tensorflow not installed")
    assert "not usable" in int8_peers.has_tensorflow("/nonexistent/bin/python")


def test_command_prints_the_table_and_writes_json(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the .tflite cache and results/ are relative to where it runs
    out = tmp_path / "doc.json"
    argv = ["--kinds", "gru", "--hidden", "4", "--steps", "100", "--rounds", "1", "--no-peers"]
    int8_bench.main([*argv, "--json", str(out), "--results", str(tmp_path / "res")])
    doc = json.loads(out.read_text())
    assert doc["format"] == "rnnedge.int8-bench" and len(doc["rows"]) == 12
    assert "rnnedge litert float" in capsys.readouterr().out
    (results,) = (tmp_path / "res" / "int8-bench").glob("*.jsonl")
    assert json.loads(results.read_text().splitlines()[0])["rows"] == doc["rows"]
