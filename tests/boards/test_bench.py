"""`rnnedge bench`: the result document validates against its schema, the peers step the same
model with its state fed back, results append per board, the plot is written, and the CLI
wires it together. Timings are tiny here: these tests check structure, never speed."""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest
import torch
from models import build

from rnnedge.boards.bench.report import append_result
from rnnedge.boards.bench.run import BenchConfig, run_bench
from rnnedge.boards.bench.schema import bench_schema, errors
from rnnedge.boards.peers.bench_paths import torch_peer_paths
from rnnedge.boards.peers.eager import step_module
from rnnedge.cli import main
from rnnedge.errors import InputError
from rnnedge.runtime import available_backends, load, read_bundle
from rnnedge.runtime.backends import MODEL_FILE_KIND

TINY = dict(
    steps=30,
    seconds=0.0,
    paced_steps=4,
    hop_ms=1.0,
    warmup_steps=2,
    warmup_seconds=0.0,
    rounds=2,
)


@pytest.fixture(scope="module")
def gru_spec(tmp_path_factory) -> str:
    """A MODEL spec building the zoo's "gru" with the weights its bundle was exported from."""
    f = tmp_path_factory.mktemp("spec") / "zoo_gru.py"
    f.write_text("from models import build\n\ndef make():\n    return build('gru')[0]\n")
    return f"{f}:make"


@pytest.fixture(scope="module")
def result(zoo_bundle, gru_spec):
    cfg = BenchConfig(bundle=str(zoo_bundle("gru")[0]), peers=True, model=gru_spec, **TINY)
    return run_bench(cfg, peer_paths=torch_peer_paths(gru_spec))


def test_every_backend_and_peer_runs_in_both_modes(result):
    names = {(r["name"], r["mode"]) for r in result.doc["runs"]}
    expected = {f"rnnedge {b}/float" for b in available_backends()}
    # raw interpreter calls, on the backends that run a model file (native's: make bench-native)
    expected |= {f"raw {b}/float" for b in available_backends() if b in MODEL_FILE_KIND}
    expected |= {"peer torch", "peer onnxruntime(torch.onnx)"}
    assert names == {(n, m) for n in expected for m in ("back-to-back", "paced")}
    assert result.doc["skipped"] == []
    for r in result.doc["runs"]:
        lat = r["latency_us"]
        assert lat["steps"] == (30 if r["mode"] == "back-to-back" else 4)  # 2 rounds of half
        assert lat["min"] <= lat["p50"] <= lat["max"]
        assert lat["p999"] is None  # 30 samples cannot show a 99.9th percentile
        assert len(result.times_ns[(r["name"], r["mode"])]) == lat["steps"]


def test_ratios_are_to_rnnedge_best_in_the_same_mode(result):
    for mode in ("back-to-back", "paced"):
        runs = [r for r in result.doc["runs"] if r["mode"] == mode]
        best = min(r["latency_us"]["p50"] for r in runs if r["kind"] == "rnnedge")
        for r in runs:
            assert r["ratio_to_best"] == pytest.approx(r["latency_us"]["p50"] / best)
        assert min(r["ratio_to_best"] for r in runs if r["kind"] == "rnnedge") == 1.0


def test_result_validates_against_the_schema(result):
    doc = json.loads(json.dumps(result.doc))  # exactly what --json writes
    assert errors(doc) == []
    jsonschema.Draft202012Validator(bench_schema()).validate(doc)  # a second opinion


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda d: d["runs"][0]["latency_us"].pop("p50"), "$.runs[0].latency_us"),
        (lambda d: d.update(version=2), "$.version"),
        (lambda d: d["runs"][1].update(mode="sprint"), "$.runs[1].mode"),
        (lambda d: d["runs"][0].update(load_ms="fast"), "$.runs[0].load_ms"),
        (lambda d: d["machine"].update(fan_rpm=3000), "$.machine"),
        (lambda d: d["config"].update(threads=4), "$.config.threads"),
        (lambda d: d["runs"][0]["latency_us"].update(steps=True), "$.runs[0].latency_us.steps"),
    ],
)
def test_the_schema_rejects_broken_documents(result, mutate, where):
    doc = copy.deepcopy(result.doc)
    mutate(doc)
    found = errors(doc)
    assert found and any(e.startswith(where) for e in found), found
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(bench_schema()).validate(doc)


def test_results_append_one_line_per_run_per_board(result, tmp_path):
    path = append_result(result.doc, tmp_path)
    append_result(result.doc, tmp_path)
    assert path == tmp_path / f"{result.doc['board']['name']}.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(errors(json.loads(line)) == [] for line in lines)


def test_plot_writes_a_png(result, tmp_path):
    from rnnedge.boards.bench.plot import plot_cdf

    plot_cdf(result, tmp_path / "cdf.png")
    assert (tmp_path / "cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["gru", "lstm_2layer", "gru_explicit_state", "cells"])
def test_the_torch_peer_steps_the_model_with_its_state_fed_back(zoo_bundle, name):
    path, _, _ = zoo_bundle(name)
    model, example = build(name)
    bundle = read_bundle(path)
    x0 = example[0] if isinstance(example, tuple) else example
    step, states = step_module(model, bundle, x0)
    stream = load(path, backend="numpy").stream()
    rng = np.random.default_rng(1)
    for t in range(12):
        x = rng.uniform(-1, 1, tuple(x0.shape)).astype(np.float32)
        with torch.inference_mode():
            out = step(torch.from_numpy(x), *states)
        states = list(out[len(out) - len(states) :])
        want = stream.step(x)
        want = want if isinstance(want, tuple) else (want,)
        for got, ref in zip(out, want):
            np.testing.assert_allclose(got.numpy(), ref, atol=1e-5, err_msg=f"{name} step {t}")


def test_many_streams_and_missing_precisions(zoo_bundle):
    cfg = BenchConfig(
        bundle=str(zoo_bundle("gru")[0]),
        backends=("numpy",),
        precisions=("float", "int8"),
        streams=(1, 4),
        modes=("back-to-back",),
        peers=True,  # no --model: the torch peers are skipped with the reason
        **TINY,
    )
    doc = run_bench(cfg).doc
    assert sorted(r["streams"] for r in doc["runs"]) == [1, 4]
    reasons = {s["name"]: s["reason"] for s in doc["skipped"]}
    assert "no int8 model at all" in reasons["rnnedge numpy/int8"]
    assert any("--model" in r for r in reasons.values())
    assert errors(doc) == []


def test_bad_config_is_refused():
    with pytest.raises(InputError, match="steps must be >= 1"):
        BenchConfig(bundle="x", steps=0)
    with pytest.raises(InputError, match="modes"):
        BenchConfig(bundle="x", modes=("burst",))


def test_cli_bench_boards_and_inspect(zoo_bundle, tmp_path, capsys):
    path = str(zoo_bundle("lstm_2layer")[0])
    out_json, results = tmp_path / "r.json", tmp_path / "results"
    args = [
        "bench",
        path,
        "--steps",
        "20",
        "--seconds",
        "0",
        "--paced-steps",
        "2",
        "--hop",
        "1ms",
        "--warmup-steps",
        "1",
        "--warmup-seconds",
        "0",
        "--rounds",
        "1",
        "--backend",
        "numpy",
        "--board",
        "pi4",
        "--json",
        str(out_json),
        "--results",
        str(results),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "vs best" in text and "ESTIMATE" in text
    doc = json.loads(out_json.read_text())
    assert doc["board"]["name"] == "pi4b" and doc["config"]["hop_ms"] == 1.0
    assert len((results / "pi4b.jsonl").read_text().splitlines()) == 1

    assert main(["boards"]) == 0
    text = capsys.readouterr().out
    assert "this machine:" in text and "pi5" in text
    assert main(["inspect", path, "--board", "pi4"]) == 0
    assert "ESTIMATE" in capsys.readouterr().out
    assert main(["inspect", path, "--board", "pi9"]) == 2  # a usage error
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown board 'pi9'" in err
