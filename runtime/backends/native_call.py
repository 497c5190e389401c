"""The native backend's call path: a tiny CPython extension (native_call.c) that steps one
stream in one C call from Python, or ctypes when it cannot be built.

The extension's Stepper checks x, copies it into the bound input, calls rnnedge_step on the
bound pointer sets (state buffers swapped by parity, never copied) and returns fresh output
arrays: what the ctypes runner does in ~1 us of Python, in one call (docs/native.md,
"Measured"). It is built like the model library (native_build.py): with the system compiler,
once, cached by the hash of its source, the compiler, the Python ABI and numpy's version. It
needs Python.h and numpy's headers, which a board may not have; then the backend calls through
ctypes and says why in `call_reason` (never printed). $RNNEDGE_NATIVE_CALL=ctypes forces
ctypes (benches compare the two).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from rnnedge.errors import BackendError
from rnnedge.runtime.backends.native_build import cache_dir, compile_shared, compiler

SOURCE = Path(__file__).with_name("native_call.c")
MODULE = "rnnedge_call"  # PyInit_rnnedge_call in native_call.c
CALL_FLAGS = ("-O2", "-std=c99", "-fPIC", "-shared", "-fno-strict-aliasing")


@dataclass(frozen=True)
class CallPath:
    """How the backend calls the C step: "extension" (the module) or "ctypes" (and why)."""

    name: str
    module: ModuleType | None = None
    reason: str = ""


def python_include() -> Path:
    return Path(sysconfig.get_paths()["include"])


def numpy_include() -> Path:
    import numpy as np

    return Path(np.get_include())


def call_path() -> CallPath:
    """The extension when it builds here, else ctypes with the reason."""
    if os.environ.get("RNNEDGE_NATIVE_CALL", "").strip().lower() == "ctypes":
        return CallPath("ctypes", reason="$RNNEDGE_NATIVE_CALL=ctypes")
    py_inc, np_inc, found = python_include(), numpy_include(), compiler()
    if not (py_inc / "Python.h").is_file():
        return CallPath("ctypes", reason=f"no Python.h in {py_inc} (apt install python3-dev)")
    if not (np_inc / "numpy" / "arrayobject.h").is_file():
        return CallPath("ctypes", reason=f"no numpy/arrayobject.h in {np_inc}")
    if found is None:
        return CallPath("ctypes", reason="no C compiler")
    try:
        return CallPath("extension", module=_extension(py_inc, np_inc, found))
    except BackendError as e:
        return CallPath("ctypes", reason=str(e))


@functools.cache
def _extension(py_inc: Path, np_inc: Path, found: tuple[str, str]) -> ModuleType:
    import numpy as np

    source = SOURCE.read_bytes()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    key = hashlib.sha256(
        b"\0".join(
            s.encode() if isinstance(s, str) else s
            for s in (source, " ".join(CALL_FLAGS), found[1], suffix, np.__version__)
        )
    ).hexdigest()[:32]
    path = cache_dir() / f"call-{key}" / f"{MODULE}{suffix}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        opts = (*CALL_FLAGS, f"-I{py_inc}", f"-I{np_inc}")
        compile_shared(found[0], opts, source, "native_call.c", path)
    spec = importlib.util.spec_from_file_location(MODULE, path)
    if spec is None or spec.loader is None:
        raise BackendError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        raise BackendError(f"cannot load {path} ({e})") from e
    return module
