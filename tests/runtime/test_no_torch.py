"""The runtime must work on a board where torch (and onnx) are not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run_without_torch(code: str) -> subprocess.CompletedProcess:
    prelude = "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120
    )


def test_runtime_imports_without_torch() -> None:
    r = _run_without_torch("import rnnedge, rnnedge.runtime; print('ok')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_a_bundle_streams_without_torch(zoo_bundle) -> None:
    path = zoo_bundle("lstm_2layer")[0]
    code = (
        "import numpy as np, rnnedge\n"
        "for b in ('numpy', 'onnxruntime', 'litert'):\n"
        f"    s = rnnedge.load({str(path)!r}, backend=b).stream()\n"
        "    print(b, s.run(np.ones((5, 1, 1, 8), np.float32)).shape)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    r = _run_without_torch(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == [
        f"{b} (5, 1, 1, 4)" for b in ("numpy", "onnxruntime", "litert")
    ]


def test_runtime_tests_import_without_torch() -> None:
    # `make arm64` runs tests/runtime/test_runtime.py in a root without torch: a torch import there
    # (bundles it needs are exported on x86, see boards/arm64/export_bundles.py) breaks it
    here, tests = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
    path = f"sys.path[:0] = [{str(here)!r}, {str(tests)!r}]"
    r = _run_without_torch(f"{path}; import test_runtime")
    assert r.returncode == 0, r.stderr


def test_torch_guard_is_real() -> None:
    # the guard above must actually make torch unimportable, or the tests prove nothing
    r = _run_without_torch("import torch")
    assert r.returncode != 0
