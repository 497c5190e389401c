"""conftest.py for the runtime tests inside the emulated arm64 root (copied there as
conftest.py next to tests/runtime/test_runtime.py and tests/runtime/test_no_torch.py).

The repo's own fixture exports zoo models with torch, which the root does not have (and must
not: the runtime is proved without it). This one hands out the same zoo models exported
natively on x86 by export_bundles.py, so the tests themselves run unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
BUNDLES = Path(os.environ.get("RNNEDGE_ARM64_BUNDLES", "/opt/rnnedge-arm64/bundles"))


@pytest.fixture(scope="session")
def zoo_bundle():
    """zoo_bundle(name) -> (bundle path, None, None): no Captured or torch model here."""

    def get(name: str):
        path = BUNDLES / f"{name}.rnnedge"
        if not path.is_dir():
            pytest.fail(f"{path} was not exported on x86 (add {name!r} to export_bundles.py)")
        return path, None, None

    return get
