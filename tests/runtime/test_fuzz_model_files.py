"""Fuzzing the model files: every mutated model.onnx / model.tflite loads and steps, or gives
an RnnedgeError (see test_fuzz.py for the rest of the bundle).

The mutants run in a child process (this file run as a script), because LiteRT's C++
interpreter can segfault on hostile .tflite bytes (see docs/reliability.md); a crash is then
a recorded outcome instead of the end of the test run.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

from fuzz_bundle import fixed_manifest, outcome, write_bundle_dir

try:  # the child process (this file run as a script) needs no pytest
    import pytest
except ImportError:  # pragma: no cover
    pytest = None


def mutate_bytes(data: bytes, seed: int) -> bytes:
    r = random.Random(seed)
    d = bytearray(data)
    kind = r.choice(["flip", "bytes", "truncate", "edge", "int32"])
    if kind == "flip":
        d[r.randrange(len(d))] ^= 1 << r.randrange(8)
    elif kind == "bytes":
        for _ in range(r.randint(2, 20)):
            d[r.randrange(len(d))] = r.randrange(256)
    elif kind == "truncate":
        d = d[: r.randrange(len(d))]
    elif kind == "edge":
        d[r.randrange(len(d))] = r.choice([0, 0xFF, 0x7F, 0x80])
    else:  # a 4-aligned word (flatbuffer offsets, protobuf lengths) set to an edge value
        at = r.randrange(max(1, len(d) - 4)) & ~3
        d[at : at + 4] = r.choice([0, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 24]).to_bytes(4, "little")
    return bytes(d)


def _child(base: Path, work: Path, backend: str, name: str, start: int, stop: int) -> None:
    """Loads and steps mutants start..stop-1, printing 'start SEED' before each (so the parent
    knows which one crashed) and 'ok|refused|other SEED ...' after."""
    files = {p.name: p.read_bytes() for p in base.iterdir() if p.name != "manifest.json"}
    manifest = json.loads((base / "manifest.json").read_text())
    for seed in range(start, stop):
        mutated = {**files, name: mutate_bytes(files[name], seed)}
        write_bundle_dir(work, mutated, fixed_manifest(manifest, mutated))
        print("start", seed, flush=True)
        try:
            print(outcome(work, [backend]), seed, flush=True)
        except Exception as e:
            print("other", seed, f"{type(e).__name__}: {e}"[:300].replace("\n", " "), flush=True)


def fuzz_model_file(base: Path, work: Path, backend: str, name: str, seeds: range) -> dict:
    """Runs the mutants in child processes, restarting after a crash; returns the counts, the
    seeds that crashed the child and the non-rnnedge exceptions."""
    seen: Counter = Counter()
    crashes, others = [], []
    start = seeds.start
    while start < seeds.stop:
        args = [str(base), str(work), backend, name, str(start), str(seeds.stop)]
        r = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, timeout=1800
        )
        last = start - 1
        for line in r.stdout.splitlines():
            kind, seed, *_ = [*line.split(" ", 2), ""]
            if kind not in ("start", "ok", "refused", "other"):
                continue  # an interpreter's own chatter on stdout
            if kind == "start":
                last = int(seed)
                continue
            seen[kind] += 1
            if kind == "other":
                others.append(line)
        if r.returncode == 0:
            break
        crashes.append((last, r.returncode))
        start = last + 1
    return {"seen": seen, "crashes": crashes, "others": others}


if pytest is not None:
    MODEL_FILES = [("onnxruntime", "model.onnx"), ("litert", "model.tflite")]

    def _check_model_fuzz(zoo_bundle, tmp_path, backend, name, seeds) -> None:
        result = fuzz_model_file(zoo_bundle("gru")[0], tmp_path / "m.rnnedge", backend, name, seeds)
        seen, crashes = result["seen"], result["crashes"]
        assert result["others"] == [], result["others"]
        assert seen["ok"] + seen["refused"] + len(crashes) == len(seeds), result
        assert seen["ok"] > 0 and seen["refused"] > 0, result
        # onnxruntime never crashed on 13,500 mutants; LiteRT does, in Interpreter() itself
        # (about 1 in 1,000 in our runs): documented, and the reason this runs in a child
        if backend != "litert":
            assert crashes == [], crashes
        print(f"{backend}: {dict(seen)}, crashed on seeds {crashes}")

    @pytest.mark.timeout(600)
    @pytest.mark.parametrize(("backend", "name"), MODEL_FILES)
    def test_mutated_model_files_load_or_are_refused(zoo_bundle, tmp_path, backend, name) -> None:
        _check_model_fuzz(zoo_bundle, tmp_path, backend, name, range(500))

    @pytest.mark.slow
    @pytest.mark.timeout(7200)
    @pytest.mark.parametrize(("backend", "name"), MODEL_FILES)
    def test_mutated_model_files_load_or_are_refused_slow(
        zoo_bundle, tmp_path, backend, name
    ) -> None:
        _check_model_fuzz(zoo_bundle, tmp_path, backend, name, range(600, 10_600))


if __name__ == "__main__":
    base_dir, work_dir, backend_name, file_name, first, last = sys.argv[1:7]
    _child(Path(base_dir), Path(work_dir), backend_name, file_name, int(first), int(last))
