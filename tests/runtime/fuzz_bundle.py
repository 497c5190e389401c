"""Assembling and judging a mutated bundle, for the fuzz tests (test_fuzz.py and
test_fuzz_model_files.py, whose child process imports this too): write the files with the
manifest's sha256 FIXED, so the reader gets past the integrity check and really parses the
mutated content; the outcome is "ok" or "refused", any other exception propagates."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np

import rnnedge
from rnnedge.errors import RnnedgeError
from rnnedge.runtime import read_bundle

DEEP = "__deep__"  # replaced in the JSON text by nesting far beyond json's recursion limit
BIG = "__big__"  # replaced by a 5,000-digit integer, which json.loads refuses (ValueError)
STEP_LIMIT = 1 << 20  # do not allocate a step input larger than this (the limits allow 1 GiB)


def write_bundle_dir(work: Path, files: dict[str, bytes], manifest: dict | bytes) -> None:
    """Writes the bundle; a manifest given as a dict gets every listed file's true sha256."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name, data in files.items():
        (work / name).write_bytes(data)
    (work / "manifest.json").write_bytes(
        dumps(manifest) if isinstance(manifest, dict) else manifest
    )


def dumps(doc: dict) -> bytes:
    text = json.dumps(doc).replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
    return text.replace(json.dumps(BIG), "9" * 5000).encode()


def fixed_manifest(manifest: dict, files: dict[str, bytes]) -> dict:
    m = copy.deepcopy(manifest)
    m["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    return m


def outcome(path: Path, backends: list[str]) -> str:
    """ "refused" or "ok"; any exception but an RnnedgeError propagates (a test failure)."""
    try:
        bundle = read_bundle(path)
    except RnnedgeError:
        return "refused"
    with contextlib.suppress(RnnedgeError):
        bundle.golden()
    loaded = 0
    for backend in backends:
        try:
            model = rnnedge.load(path, backend=backend)
        except RnnedgeError:
            continue
        loaded += 1
        shape = model.step_input.shape
        if math.prod(shape) <= STEP_LIMIT:
            with contextlib.suppress(RnnedgeError):
                model.stream().step(np.ones(shape, np.float32))
    return "ok" if loaded else "refused"
