"""Bundle I/O: a NAME.rnnedge/ directory (see ARCHITECTURE.md, "The bundle").

Writing is atomic: files go to a hidden temporary directory beside the target, which is renamed
into place only when complete, so a crash or Ctrl-C never leaves a half bundle. Reading checks
the format version, that every listed file exists, and every file's sha256, before parsing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnedge.errors import BundleError, GraphError
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import Manifest
from rnnedge.runtime.npzio import read_npz

MAX_FILE_BYTES = 1 << 31  # 2 GiB: refuse larger files before reading them
REQUIRED = ("graph.json", "weights.npz", "golden.npz")


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    graph: Graph
    files: dict[str, bytes]  # every file but manifest.json, hash-checked

    def __repr__(self) -> str:  # never the weights: a REPL echo must stay one line
        models = ", ".join(f"{m.path}" for m in self.manifest.models)
        return f"<rnnedge.Bundle {str(self.path)!r} {self.manifest.producer}: {models}>"

    def model_bytes(self, fmt: str, precision: str) -> bytes:
        """The model file of format `fmt` ("onnx" | "tflite", manifest.MODEL_FORMATS)."""
        for m in self.manifest.models:
            if m.backend == fmt and m.precision == precision:
                return self.files[m.path]
        have = ", ".join(f"{m.backend}/{m.precision}" for m in self.manifest.models) or "none"
        raise BundleError(
            f"{self.path}: has no {fmt} model in precision {precision!r} (has {have})"
        )

    def golden(self) -> dict[str, np.ndarray]:
        return read_npz(self.files["golden.npz"], what=f"{self.path}/golden.npz")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(out: str | os.PathLike, manifest: Manifest, files: dict[str, bytes]) -> Path:
    """Writes manifest.json (with every file's sha256) and `files` atomically to `out`."""
    out = Path(out)
    manifest = dataclasses.replace(manifest, files={n: sha256(b) for n, b in sorted(files.items())})
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except (OSError, ValueError) as e:
        raise BundleError(f"{out}: cannot write the bundle here ({_reason(e)})") from e
    try:
        # mkdtemp makes the directory 0700; a bundle is meant to be shared, so give it the
        # permissions any new directory gets under the user's umask
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        for name, data in {**files, "manifest.json": manifest.to_json().encode()}.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _replace_dir(tmp, out)
    except OSError as e:  # a full disk, a read-only file system, a permission change
        raise BundleError(f"{out}: writing the bundle failed ({_reason(e)})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _reason(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def _replace_dir(new: Path, out: Path) -> None:
    if not out.exists():
        new.rename(out)
        return
    if not (out / "manifest.json").is_file():
        raise BundleError(f"{out} exists and is not an rnnedge bundle; refusing to replace it")
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def read_bundle(path: str | os.PathLike, *, verify: bool = True) -> Bundle:
    """Reads and checks a bundle. `verify=False` skips the sha256 checks (for trusted, very
    large bundles only); structure and size limits are always checked."""
    path = Path(path)
    try:
        is_dir = path.is_dir()
    except (OSError, ValueError) as e:  # a name too long, a NUL byte in it
        raise BundleError(f"{path}: cannot open the bundle ({_reason(e)})") from e
    if not is_dir:
        kind = "is a file, not a bundle directory" if path.is_file() else "no such bundle directory"
        raise BundleError(f"{path}: {kind}")
    manifest = Manifest.from_json(_read(path, "manifest.json"))
    for name in REQUIRED:
        if name not in manifest.files:
            raise BundleError(f"{path}/manifest.json: does not list required file {name}")
    files = {}
    for name, digest in manifest.files.items():
        data = _read(path, name)
        if verify and sha256(data) != digest:
            raise BundleError(f"{path}/{name}: sha256 mismatch; the file was modified or corrupted")
        files[name] = data
    for m in manifest.models:
        if m.path not in files:
            raise BundleError(f"{path}/manifest.json: model file {m.path} is not in 'files'")
    graph = _read_graph(path, files)
    _check_io(path, manifest, graph)
    return Bundle(path=path, manifest=manifest, graph=graph, files=files)


def _read(path: Path, name: str) -> bytes:
    f = path / name
    try:
        if not f.is_file():
            raise BundleError(f"{f}: missing from the bundle")
        size = f.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BundleError(f"{f}: {size} bytes exceeds the limit of {MAX_FILE_BYTES}")
        return f.read_bytes()
    except (OSError, ValueError) as e:  # unreadable (permissions, I/O error), name too long
        raise BundleError(f"{f}: cannot read it ({_reason(e)})") from e


def _read_graph(path: Path, files: dict[str, bytes]) -> Graph:
    try:
        doc = json.loads(files["graph.json"])
    except (ValueError, RecursionError) as e:  # ValueError: also over-long integer literals
        raise BundleError(f"{path}/graph.json: not valid JSON ({e})") from e
    constants = read_npz(files["weights.npz"], what=f"{path}/weights.npz")
    try:
        return Graph.from_json(doc, constants)
    except GraphError as e:
        raise BundleError(f"{path}/graph.json: {e}") from e


def _check_io(path: Path, manifest: Manifest, graph: Graph) -> None:
    if manifest.inputs != graph.inputs or manifest.outputs != graph.outputs:
        raise BundleError(f"{path}: manifest inputs/outputs do not match graph.json")
    pairs = {(s.input, s.output, s.init) for s in manifest.states}
    if pairs != {(s.input, s.output, s.init) for s in graph.states}:
        raise BundleError(f"{path}: manifest states do not match graph.json")
    # the declared shapes too: the backends check graph.json's against every model file
    for s in manifest.states:
        want = graph.spec(s.input).shape
        if tuple(s.shape) != want or graph.constants[s.init].shape != want:
            raise BundleError(
                f"{path}/manifest.json: state {s.input!r} is declared {list(s.shape)}, "
                f"graph.json and the model files have {list(want)}"
            )
