"""Bundle format: contents, integrity checks, refusal of bad bundles, atomic reproducible writes."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch
from models import build

import rnnedge
from rnnedge.errors import BundleError
from rnnedge.export.gates import run_golden
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.npzio import read_npz, write_npz

FILES = {"manifest.json", "graph.json", "weights.npz", "model.onnx", "model.tflite", "golden.npz"}
FILES |= {"model.c", "model.h"}  # the native backend's C (docs/native.md)


@pytest.fixture
def bundle(zoo_bundle, tmp_path):
    """A private copy of the GRU bundle that a test may damage."""
    copy = tmp_path / "gru.rnnedge"
    shutil.copytree(zoo_bundle("gru")[0], copy)
    return copy


def test_bundle_holds_the_documented_files(bundle) -> None:
    assert {p.name for p in bundle.iterdir()} == FILES
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "rnnedge.bundle"
    assert manifest["format_version"] == "1.2"
    assert set(manifest["files"]) == FILES - {"manifest.json"}
    assert manifest["states"][0]["input"] == "rnn.h"
    assert manifest["states"][0]["init_is_zero"] is True
    assert {(m["backend"], m["precision"]) for m in manifest["models"]} == {
        ("onnx", "float"),
        ("tflite", "float"),
    }


def test_golden_vectors_are_pytorch_outputs_at_every_step(zoo_bundle) -> None:
    path, cap, model = zoo_bundle("lstm_2layer")
    gold = read_bundle(path).golden()
    xs = gold["seq0.x"]
    # outputs: the model run over the whole sequence (batch_first: time is axis 1), as users
    # run it; states: PyTorch's step with the state carried (the model does not return them)
    with torch.no_grad():
        whole = model(torch.from_numpy(np.concatenate(list(xs), axis=1))).numpy()
    states = [cap.graph.constants[s.init] for s in cap.graph.states]
    for t, x in enumerate(xs):
        _, states = cap.torch_step([x], states)
        np.testing.assert_array_equal(gold["seq0.y"][t], whole[:, t : t + 1])
        np.testing.assert_array_equal(gold["seq0.rnn.c_out"][t], states[1])
    for backend in rnnedge.runtime.available_backends():
        assert max(run_golden(read_bundle(path), backend).values()) < 1e-5


@pytest.mark.parametrize(
    "name", ["weights.npz", "model.onnx", "model.tflite", "graph.json", "golden.npz"]
)
def test_tampered_file_is_refused_by_name(bundle, name) -> None:
    data = bytearray((bundle / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{name}: sha256 mismatch"):
        rnnedge.load(bundle)


def test_missing_file_is_refused(bundle) -> None:
    (bundle / "model.tflite").unlink()
    with pytest.raises(BundleError, match=r"model.tflite: missing"):
        rnnedge.load(bundle)


def test_unknown_major_version_is_refused(bundle) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    m["format_version"] = "2.0"
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"format version '2\.0' is not supported"):
        rnnedge.load(bundle)


def test_newer_minor_version_is_read(bundle) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    m["format_version"] = "1.7"
    m["a_field_from_the_future"] = {"x": 1}
    (bundle / "manifest.json").write_text(json.dumps(m))
    assert rnnedge.load(bundle, backend="numpy").stream().step(np.zeros((1, 1, 8))).shape == (
        1,
        1,
        4,
    )


@pytest.mark.parametrize("text", [b"{not json", b"[]", b'{"format": "other"}', b"\xff\xfe"])
def test_corrupt_manifest_is_refused(bundle, text) -> None:
    (bundle / "manifest.json").write_bytes(text)
    with pytest.raises(BundleError, match=r"manifest\.json"):
        rnnedge.load(bundle)


def test_manifest_file_names_cannot_escape_the_bundle(bundle) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"]["../../etc/passwd"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="not a plain file name"):
        rnnedge.load(bundle)


def test_npz_header_promising_a_huge_array_is_refused_without_allocating() -> None:
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("w.npy", member.getvalue() + b"\0" * 16)
    with pytest.raises(BundleError, match="exceeds the size limits"):
        read_npz(buf.getvalue(), what="weights.npz")


def test_npz_refuses_pickled_objects() -> None:
    buf = io.BytesIO()
    np.savez(buf, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(BundleError, match="dtype object is not allowed"):
        read_npz(buf.getvalue(), what="weights.npz")


def test_npz_round_trip_is_byte_identical() -> None:
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.zeros(0, np.float32)}
    data = write_npz(arrays)
    assert write_npz(read_npz(data, what="x")) == data


def test_export_is_reproducible(tmp_path) -> None:
    model, example = build("gru")
    a = export_bundle(model, example, tmp_path / "a.rnnedge")
    b = export_bundle(model, example, tmp_path / "b.rnnedge")
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    import rnnedge.export.pipeline as pipeline

    def crash(*_a, **_k):
        raise KeyboardInterrupt  # as if Ctrl-C arrived while the files were written

    model, example = build("gru")
    monkeypatch.setattr("rnnedge.runtime.bundle._replace_dir", crash)
    with pytest.raises(KeyboardInterrupt):
        pipeline.export_bundle(model, example, tmp_path / "x.rnnedge")
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_an_existing_bundle_but_not_other_directories(tmp_path) -> None:
    model, example = build("gru")
    out = export_bundle(model, example, tmp_path / "m.rnnedge")
    export_bundle(model, example, out)  # overwriting a bundle is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rnnedge"]
    (tmp_path / "notes").mkdir()
    with pytest.raises(BundleError, match="not an rnnedge bundle"):
        export_bundle(model, example, tmp_path / "notes")


@pytest.mark.parametrize(
    ("golden", "message"),
    [
        ([np.full((4, 1, 1, 8), np.nan, np.float32)], "golden sequence 0: holds NaN or Inf"),
        ([np.array([["a"] * 8] * 4)], "golden sequence 0: dtype <U1 is not numeric"),
        ([np.zeros((4, 1, 1, 7), np.float32)], r"golden sequence 0: shape \[4, 1, 1, 7\]"),
    ],
)
def test_bad_golden_sequences_are_refused(tmp_path, golden, message) -> None:
    from rnnedge.errors import InputError

    model, example = build("gru")
    with pytest.raises(InputError, match=message):
        export_bundle(model, example, tmp_path / "g.rnnedge", golden=golden)
    assert not (tmp_path / "g.rnnedge").exists()


def test_npz_from_a_newer_zip_version_is_refused() -> None:
    # found by the slow fuzz: zipfile raises NotImplementedError for "version needed" > 6.3
    data = bytearray(write_npz({"a": np.zeros(3, np.float32)}))
    central = data.rfind(b"PK\x01\x02")
    data[central + 6] = 84  # version needed to extract: 8.4
    with pytest.raises(BundleError, match=r"not a valid npz archive \(NotImplementedError"):
        read_npz(bytes(data), what="weights.npz")
