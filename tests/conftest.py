"""Shared fixtures: bundles of the model zoo, exported once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


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
