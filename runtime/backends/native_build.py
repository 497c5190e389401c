"""Builds a bundle's generated C (model.c, written by export/c/) into a shared library with
the system C compiler, once: the library is cached by the hash of the source, the flags and
the compiler, in $RNNEDGE_CACHE_DIR or the user cache dir ($XDG_CACHE_HOME/rnnedge/native).

Flags: -O3 -march=native by default (the build runs on the board that runs the model), or
$RNNEDGE_CFLAGS (a board profile's flags, e.g. "-O3 -mcpu=cortex-a72"). -ffp-contract=off
always: a fused multiply-add would round differently from the numpy spec the int8 path must
equal bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from rnnedge.errors import BackendError

DEFAULT_FLAGS = ("-O3", "-march=native")
FIXED_FLAGS = (
    "-std=c99",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fPIC",
    "-shared",
)
INSTALL_HINT = "install a C compiler (apt install gcc) or choose another backend"


@functools.cache
def compiler() -> tuple[str, str] | None:
    """(path, version line) of the C compiler: $CC, else cc, gcc or clang on PATH."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        path = shutil.which(name) if name else None
        if path is None:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0:
            return path, (out.stdout.splitlines() or [""])[0]
    return None


def flags() -> tuple[str, ...]:
    custom = os.environ.get("RNNEDGE_CFLAGS")
    return (*(shlex.split(custom) if custom else DEFAULT_FLAGS), *FIXED_FLAGS)


def cache_dir() -> Path:
    root = os.environ.get("RNNEDGE_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "rnnedge" / "native"


def build(source: bytes, header: bytes, c_name: str, h_name: str) -> Path:
    """The path of the shared library of `source`, compiling it on first use."""
    found = compiler()
    if found is None:
        raise BackendError(f"native backend: no C compiler found; {INSTALL_HINT}")
    cc, version = found
    opts = flags()
    key = hashlib.sha256(
        b"\0".join(
            [source, header, " ".join(opts).encode(), version.encode(), os.uname().machine.encode()]
        )
    ).hexdigest()[:32]
    lib = cache_dir() / f"{key}.so"
    if not lib.is_file():
        compile_shared(cc, opts, source, c_name, lib, {h_name: header})
    return lib


def compile_shared(
    cc: str,
    opts: tuple[str, ...],
    source: bytes,
    c_name: str,
    dest: Path,
    extra: dict[str, bytes] | None = None,
) -> None:
    """Compiles `source` (with `extra` files, e.g. its header, beside it) to the shared
    library `dest`, in a private directory moved into place whole."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
    except OSError as e:
        raise BackendError(
            f"native backend: cannot write the build cache {dest.parent} ({e})"
        ) from e
    try:
        (work / c_name).write_bytes(source)
        for name, data in (extra or {}).items():
            (work / name).write_bytes(data)
        _compile(cc, opts, work, c_name)
        os.replace(work / "model.so", dest)  # atomic: a concurrent build finds a whole file
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compile(cc: str, opts: tuple[str, ...], work: Path, c_name: str) -> None:
    cmd = [cc, *opts, "-o", str(work / "model.so"), str(work / c_name), "-lm"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0 and "-march=native" in opts:  # a compiler without it: portable C
        cmd = [c for c in cmd if c != "-march=native"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        first = (out.stderr.strip().splitlines() or ["(no message)"])[0]
        raise BackendError(f"native backend: {Path(cc).name} failed to build {c_name}: {first}")
