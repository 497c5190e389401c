"""What every command checks before it starts any work: the optional packages its options
need, the paths it will write, and the arrays it will read. Each problem is one UsageError
(exit code 2), raised in milliseconds rather than after a minute of export or check.
"""

from __future__ import annotations

import importlib.util
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from rnnedge.errors import InputError, MissingDependencyError, RnnedgeError, UsageError
from rnnedge.runtime.inputs import split_sequences
from rnnedge.runtime.npzio import read_npz

# module -> (what it is, the extra that installs it)
EXTRAS = {
    "torch": ("PyTorch", "export"),
    "onnx": ("onnx", "export"),
    "flatbuffers": ("flatbuffers", "export"),
    "tflite": ("the TFLite schema package", "export"),
    "sklearn": ("scikit-learn", "demo"),
    "matplotlib": ("matplotlib", "plot"),
}
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def require(modules: tuple[str, ...], why: str) -> None:
    """Refuses, naming the extra to install, when any of `modules` is not importable.
    find_spec only looks: nothing is imported (torch takes seconds)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            what, extra = EXTRAS[module]
            raise MissingDependencyError(
                f"{why} needs {what}, which is not installed here: pip install 'rnnedge[{extra}]'"
            )


def writable(path: str | None, option: str, *, directory: bool = False) -> None:
    """`path` can be written, tried for real (permission bits say nothing to root, nor about
    /proc or a read-only mount): a file is opened for appending and removed again if it was
    not there; a directory's nearest existing parent gets a temporary directory."""
    if path is None:
        return
    p = Path(path)
    try:
        if directory:
            if p.exists() and not p.is_dir():
                raise UsageError(f"{option} {path}: cannot write it (a file is in the way)")
            probe = p.parent
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            os.rmdir(tempfile.mkdtemp(prefix=".rnnedge-probe-", dir=probe))
            return
        existed = p.exists()
        with open(p, "ab"):
            pass
        if not existed:
            p.unlink()
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot write it ({e.strerror or e})") from e


def read_arrays(path: str, option: str) -> dict[str, np.ndarray]:
    """A .npy (one array, named after the file) or .npz (its arrays, in file order), told
    apart by their first bytes, never by the name; never unpickled."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot read it ({e.strerror or e})") from e
    try:
        if data.startswith(ZIP_MAGIC):
            return read_npz(data, what=f"{option} {path}")
        if data.startswith(NPY_MAGIC):
            return {Path(path).stem: _read_npy(data, path, option)}
    except RnnedgeError as e:
        raise UsageError(str(e)) from e
    raise UsageError(f"{option} {path}: not a numpy .npy or .npz file")


def _read_npy(data: bytes, path: str, option: str) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:  # a pickled object array, a corrupt header
        raise UsageError(f"{option} {path}: not a plain numeric .npy array ({e})") from e
    return arr


def read_sequences(path: str, step_shape: tuple[int, ...], option: str) -> list[np.ndarray]:
    """Every sequence in a .npy/.npz file by the one shape rule (runtime/inputs.py)."""
    seqs: list[np.ndarray] = []
    for name, arr in read_arrays(path, option).items():
        try:
            seqs += split_sequences(arr, step_shape, f"{option} {path}:{name}")
        except InputError as e:
            raise UsageError(str(e)) from e
    if not seqs:
        raise UsageError(f"{option} {path}: holds no sequences")
    return seqs
