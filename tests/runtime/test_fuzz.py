"""Fuzzing the bundle reader: every mutated bundle loads and steps, or gives an RnnedgeError.

Each example takes the GRU zoo bundle, mutates one thing (manifest.json or graph.json at the
JSON level, weights.npz or golden.npz at the byte or npy-header level, model.onnx or
model.tflite bytes), then FIXES the manifest's sha256 so the reader gets past the integrity
check and really parses the mutated content. The outcome must be a model that steps (or
fails to step with an RnnedgeError), or an RnnedgeError: never another exception or a hang.

Model-file bytes are fuzzed in test_fuzz_model_files.py; fuzz_bundle.py writes and judges a
mutant for both.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from collections import Counter

import numpy as np
import pytest
from fuzz_bundle import BIG, DEEP, dumps, fixed_manifest, outcome, write_bundle_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnedge
from rnnedge.errors import BundleError, RnnedgeError
from rnnedge.runtime import available_backends, read_bundle
from rnnedge.runtime.npzio import read_npz

# --- JSON-level mutations ------------------------------------------------------------------


def _names(doc: object) -> list[str]:
    """Every string in a document: tensor names, op names, file names to mix in."""
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _names(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _names(v)]
    return [doc] if isinstance(doc, str) else []


def _values(pool: list[str]):
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.sampled_from([0, -1, 1, 2, 3, 2**31, 10**30, 100_000, BIG]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(pool),
        st.just([100_000, 100_000, 100_000]),
        st.just([[0, 10**9]] * 3),
        st.lists(st.integers(-3, 70_000), max_size=9),
        st.lists(st.sampled_from(pool), max_size=4),
        st.dictionaries(st.sampled_from(pool), st.integers(-2, 9), max_size=3),
        st.just(DEEP),
    )


def _mutate_json(doc: dict, data, pool: list[str], n_max: int = 3) -> dict:
    """1..n_max random edits: delete, replace, duplicate, swap, rename a key."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, n_max), label="edits")):
        parent, key = None, None
        node = doc
        while isinstance(node, dict | list) and node and data.draw(st.booleans(), label="deeper"):
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, data.draw(st.sampled_from(keys), label="key")
            node = parent[key]
        if parent is None:
            continue
        action = data.draw(st.sampled_from(["delete", "replace", "dup", "swap", "rename"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = data.draw(_values(pool), label="value")
        elif action == "dup" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif action == "swap" and isinstance(parent, list):
            other = data.draw(st.integers(0, len(parent) - 1), label="other")
            parent[key], parent[other] = parent[other], parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(pool), label="new key")] = parent.pop(key)
    return doc


# --- npz mutations -------------------------------------------------------------------------

_DESCRS = ["<f8", "|O", "<i8", ">f4", "<f2", "|b1", "<U3", "V8", "<i4", "|i1", "<c8", "<f4"]


def _rezip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


def _mutate_npz(blob: bytes, data) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "truncate", "header", "member", "junk"]))
    if kind == "flip":
        out = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            out[data.draw(st.integers(0, len(out) - 1), label="at")] ^= data.draw(
                st.integers(1, 255), label="xor"
            )
        return bytes(out)
    if kind == "truncate":
        return blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    if kind == "junk":
        return data.draw(st.binary(max_size=200), label="junk")
    zf = zipfile.ZipFile(io.BytesIO(blob))
    members = {i.filename: zf.read(i) for i in zf.infolist()}
    name = data.draw(st.sampled_from(sorted(members)), label="member")
    body = members[name]
    if kind == "member":
        action = data.draw(st.sampled_from(["drop", "rename", "copy"]))
        new = data.draw(st.sampled_from(["../x.npy", "x.txt", "a/", "w.npy", name]), label="name")
        if action != "copy":
            del members[name]
        if action != "drop":
            members[new] = body
        return _rezip(members)
    # header edits: the dict text after the magic and length, re-zipped with a correct CRC
    head_end = 10 + int.from_bytes(body[8:10], "little")  # npy 1.0: magic, version, length
    header = body[:head_end].decode("latin1")
    edit = data.draw(st.sampled_from(["shape", "descr", "fortran", "text", "version"]))
    if edit == "shape":
        dims = data.draw(st.lists(st.integers(-1, 10**12), max_size=10), label="dims")
        header = re.sub(r"\(.*?\)", "(" + "".join(f"{d}," for d in dims) + ")", header)
    elif edit == "descr":
        descr = data.draw(st.sampled_from(_DESCRS), label="descr")
        header = re.sub(r"'descr': '[^']*'", f"'descr': '{descr}'", header)
    elif edit == "fortran":
        header = header.replace("False", "True")
    elif edit == "text":
        header = header[:10] + data.draw(st.text(max_size=30), label="text") + header[10:]
    else:
        return _rezip(
            {**members, name: body[:6] + bytes([data.draw(st.integers(0, 9))]) + body[7:]}
        )
    new_header = header.encode("latin1", "replace")
    # keep the 2-byte little-endian header length honest, or the reader stops at the length
    new_header = new_header[:8] + (len(new_header) - 10).to_bytes(2, "little") + new_header[10:]
    return _rezip({**members, name: new_header + body[head_end:]})


# --- fixtures and tests --------------------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,  # a slow shared machine must not fail a test; the timeout catches hangs
    derandomize=True,  # the same examples every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FUZZ, max_examples=6000, derandomize=False)


@pytest.fixture(scope="module")
def base(zoo_bundle):
    path = zoo_bundle("gru")[0]
    files = {p.name: p.read_bytes() for p in path.iterdir() if p.name != "manifest.json"}
    manifest = json.loads((path / "manifest.json").read_text())
    return path, files, manifest, json.loads(files["graph.json"])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "m.rnnedge"


def fuzz_manifest(base, work, data) -> str:
    _, files, manifest, _ = base
    pool = [*_names(manifest), *files]
    mutated = _mutate_json(fixed_manifest(manifest, files), data, pool)
    write_bundle_dir(work, files, mutated)
    return outcome(work, available_backends())


def fuzz_graph(base, work, data) -> str:
    _, files, manifest, graph = base
    from rnnedge.runtime.ops import OPS

    pool = [*_names(graph), *OPS, "lstm", "exec"]
    files = {**files, "graph.json": dumps(_mutate_json(graph, data, pool))}
    if data.draw(st.booleans(), label="deep"):
        files["graph.json"] = files["graph.json"].replace(b'"attrs": {}', b"[" * 50_000, 1)
    write_bundle_dir(work, files, fixed_manifest(manifest, files))
    return outcome(work, available_backends())


def fuzz_io_both(base, work, data) -> str:
    """The same edit to inputs/outputs/states in manifest AND graph, so it passes their
    cross-check and reaches the backends (a hostile bundle is self-consistent)."""
    graph = base[3]
    section = data.draw(st.sampled_from(["inputs", "outputs", "states"]))
    index = data.draw(st.integers(0, len(graph[section]) - 1))
    field = data.draw(st.sampled_from(["shape", "name", "input", "output", "init", "dtype"]))
    value = data.draw(_values([*_names(graph), "float64", "int8"]), label="value")
    _write_io_edit(base, work, section, index, field, value)
    return outcome(work, available_backends())


def _write_io_edit(base, work, section: str, index: int, field: str, value) -> dict:
    """Writes the base bundle with one io entry's field set to `value` in manifest AND graph
    (and step_input for the first input); returns the manifest written."""
    _, files, manifest, graph = base
    manifest, graph = copy.deepcopy(manifest), copy.deepcopy(graph)
    for doc in (manifest, graph):
        doc[section][index][field] = value
    if section == "inputs" and index == 0:
        manifest["step_input"][field] = value
    files = {**files, "graph.json": dumps(graph)}
    write_bundle_dir(work, files, fixed_manifest(manifest, files))
    return manifest


def fuzz_npz(base, work, data) -> str:
    _, files, manifest, _ = base
    name = data.draw(st.sampled_from(["weights.npz", "golden.npz"]), label="file")
    files = {**files, name: _mutate_npz(files[name], data)}
    write_bundle_dir(work, files, fixed_manifest(manifest, files))
    return outcome(work, available_backends())


TARGETS = [fuzz_manifest, fuzz_graph, fuzz_io_both, fuzz_npz]


def _run(target, base, work, fuzz_settings) -> Counter:
    seen: Counter = Counter()

    @fuzz_settings
    @given(data=st.data())
    def check(data) -> None:
        seen[target(base, work, data)] += 1

    check()
    return seen


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", TARGETS, ids=lambda f: f.__name__)
def test_mutated_bundles_load_or_are_refused(base, work, target) -> None:
    seen = _run(target, base, work, FUZZ)
    print(f"{target.__name__}: {dict(seen)}")
    # the fuzz must exercise both sides, or it is not reaching the parsers
    assert seen["refused"] > 0 and seen["ok"] > 0, seen


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("target", TARGETS, ids=lambda f: f.__name__)
def test_mutated_bundles_load_or_are_refused_slow(base, work, target) -> None:
    seen = _run(target, base, work, SLOW)
    print(f"{target.__name__}: {dict(seen)}")
    assert seen["refused"] > 0 and seen["ok"] > 0, seen


# --- what the fuzzer found, pinned as plain regression tests -------------------------------


def _npz_with_header(shape: tuple[int, ...]) -> bytes:
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return _rezip({"w.npy": head.getvalue()})


@pytest.mark.parametrize("shape", [(2**32, 2**32), (0, 2**40, 2**40)])
def test_npz_shape_whose_int64_product_wraps_is_refused(shape) -> None:
    with pytest.raises(BundleError, match="exceeds the size limits"):
        read_npz(_npz_with_header(shape), what="weights.npz")


def test_npz_header_that_numpy_cannot_tokenize_is_corrupt() -> None:
    body = _npz_with_header((2, 2))
    broken = body.replace(b"'shape': (2, 2)", b"'shape': (2, 2")
    with pytest.raises(BundleError, match="corrupt"):
        read_npz(broken, what="weights.npz")


def test_a_zero_dim_does_not_hide_huge_dims(base, work) -> None:
    _, files, manifest, graph = base
    manifest, graph = copy.deepcopy(manifest), copy.deepcopy(graph)
    for doc in (manifest, graph, {"inputs": [manifest["step_input"]]}):
        doc["inputs"][0]["shape"] = [0, 185, 350, 351, 352, 5502, 52387]
    files = {**files, "graph.json": dumps(graph)}
    write_bundle_dir(work, files, fixed_manifest(manifest, files))
    with pytest.raises(BundleError, match="elements"):
        read_bundle(work)


def test_a_state_input_must_be_a_graph_input(base, work) -> None:
    _, files, manifest, graph = base
    manifest, graph = copy.deepcopy(manifest), copy.deepcopy(graph)
    for doc in (manifest, graph):
        doc["states"][0]["input"] = doc["outputs"][1]["name"]
    files = {**files, "graph.json": dumps(graph)}
    write_bundle_dir(work, files, fixed_manifest(manifest, files))
    with pytest.raises(BundleError, match="must be a graph input -> a graph output"):
        read_bundle(work)


def test_a_duplicated_state_pair_steps_or_is_refused(base, work) -> None:
    # the runners split a model's outputs into data and state by the graph's data outputs,
    # never by counting state pairs (a repeated pair once left LiteRT with no data output)
    _, files, manifest, graph = base
    graph = copy.deepcopy(graph)
    graph["states"].append(copy.deepcopy(graph["states"][0]))
    files = {**files, "graph.json": dumps(graph)}
    write_bundle_dir(work, files, fixed_manifest(manifest, files))
    assert outcome(work, available_backends()) in ("ok", "refused")


@pytest.mark.parametrize(
    ("section", "index", "field", "value"),
    [
        ("outputs", 0, "shape", [1, 1, 1]),  # y smaller than the C writes: a heap overflow
        ("outputs", 0, "shape", [1, 1, 64]),  # larger: zeros the C never writes, a wrong y
    ],
)
def test_native_refuses_a_manifest_its_c_was_not_generated_for(
    base, work, section, index, field, value
) -> None:
    # found by fuzz_io_both: a self-consistent manifest + graph.json with a model.c of other
    # sizes made the native step write past the runner's buffers (a segfault)
    if "native" not in available_backends():
        pytest.fail("the native backend is not available: no C compiler?")
    manifest = _write_io_edit(base, work, section, index, field, value)
    with pytest.raises(RnnedgeError, match=r"the C's outputs hold \[4, 16\] values"):
        x = np.zeros(manifest["step_input"]["shape"], np.float32)
        rnnedge.load(work, backend="native").stream().step(x)
