"""Exports are reproducible across processes, and no clock reading leaks into a bundle.

tests/runtime/test_bundle.py exports twice in ONE process. Here two separate processes export the
same model, one with another PYTHONHASHSEED, another time zone and a clock moved to the year 2100;
every file must be byte-identical. Then each file format is checked for timestamp fields.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import onnx
import pytest

CLOCK_KEYS = {"time", "timestamp", "date", "created", "modified", "mtime", "exported"}
CLOCK_ENDS = ("_at", "_time", "_date", "_timestamp")
CHILD = """
import os, sys, time
if sys.argv[2] == "shifted":  # the year 2100, another time zone: a leaked clock shows
    os.environ["TZ"] = "Pacific/Kiritimati"
    time.tzset()
    time.time = lambda: 4102444800.0
    time.time_ns = lambda: 4102444800 * 10**9
sys.path.insert(0, {tests!r})
from models import build
from rnnedge.export.pipeline import export_bundle
model, example = build("lstm_2layer")
export_bundle(model, example, sys.argv[1])
"""


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    script = CHILD.format(tests=str(Path(__file__).resolve().parents[1]))
    runs = []
    for name, seed, mode in [("a", "1", "plain"), ("b", "4242", "shifted")]:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        cmd = [sys.executable, "-c", script, str(root / f"{name}.rnnedge"), mode]
        runs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for r in runs:  # the two exports run side by side
        _, err = r.communicate(timeout=600)
        assert r.returncode == 0, err
    return root / "a.rnnedge", root / "b.rnnedge"


def test_two_processes_export_byte_identical_bundles(two_exports) -> None:
    a, b = two_exports
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert len(names) >= 6
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_no_timestamps_in_npz_json_onnx(two_exports) -> None:
    bundle = two_exports[0]
    for name in ("weights.npz", "golden.npz"):
        with zipfile.ZipFile(bundle / name) as zf:
            assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}, name
            assert all(i.extra == b"" and i.comment == b"" for i in zf.infolist()), name
    for name in ("manifest.json", "graph.json"):
        keys = _keys(json.loads((bundle / name).read_text()))
        assert not {k for k in keys if k.lower() in CLOCK_KEYS or k.endswith(CLOCK_ENDS)}, name
    model = onnx.load(bundle / "model.onnx")
    assert not model.metadata_props and not model.doc_string
    assert str(time.gmtime().tm_year) not in model.producer_version


def test_no_date_text_in_any_file(two_exports) -> None:
    """No file holds this year or today's date as text (ISO, compact or US order)."""
    now = time.gmtime()
    needles = [
        time.strftime("%Y-%m-%d", now),
        time.strftime("%Y%m%d", now),
        time.strftime("%m/%d/%Y", now),
        f"{now.tm_year}-",
    ]
    for path in two_exports[0].iterdir():
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, (path.name, needle)


def _keys(doc: object) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _keys(v)}
    return set()
