"""Shared fixtures: bundles of the model zoo, exported once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config) -> None:
    # `make test` runs pytest-xdist workers, one per core: a torch in each using every core
    # would oversubscribe the machine (measured: see the Makefile's test target)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        try:
            import torch
        except ImportError:  # a runtime-only install (boards/arm64): nothing to limit
            return
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def zoo_bundle(tmp_path_factory):
    """zoo_bundle(name) -> (bundle path, Captured); each model is exported once."""
    from models import build

    from rnnedge.export.capture.program import capture
    from rnnedge.export.pipeline import export_bundle

    cache: dict = {}
    root = tmp_path_factory.mktemp("zoo")

    def get(name: str):
        if name not in cache:
            model, example = build(name)
            path = export_bundle(model, example, root / f"{name}.rnnedge")
            cache[name] = (path, capture(model, example), model)
        return cache[name]

    return get
