"""Backends run one step of a bundle's model: `run(feeds) -> outputs`, both lists in the
Graph's input/output order, and make the Runners that streams step (runner.py). One file per
interpreter holds its Backend and its Runner; each imports its interpreter lazily, so the
runtime imports with only numpy installed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from rnnedge.errors import BackendError
from rnnedge.runtime.backends.runner import Runner, batch_shape
from rnnedge.runtime.bundle import Bundle

__all__ = [
    "BACKENDS",
    "MODEL_FILE_KIND",
    "Backend",
    "Runner",
    "available_backends",
    "batch_shape",
    "offers",
    "open_backend",
    "open_noting_fallbacks",
]


class Backend(Protocol):
    name: str  # one of BACKENDS
    label: str  # the backend and the model file it runs, for errors: "LiteRT (model.tflite)"

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]: ...

    def runner(self, streams: int = 1) -> Runner:
        """A runner for `streams` streams stacked along the batch axes, state at zeros."""


def _numpy(bundle: Bundle, precision: str) -> Backend:
    from rnnedge.runtime.backends.numpy_backend import NumpyBackend

    return NumpyBackend(bundle, precision)


def _onnxruntime(bundle: Bundle, precision: str) -> Backend:
    from rnnedge.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(bundle, precision)


def _litert(bundle: Bundle, precision: str) -> Backend:
    from rnnedge.runtime.backends.litert_backend import LiteRTBackend

    return LiteRTBackend(bundle, precision)


def _native(bundle: Bundle, precision: str) -> Backend:
    from rnnedge.runtime.backends.native_backend import NativeBackend

    return NativeBackend(bundle, precision)


# in the order "auto" tries them: the bundle's own C where a compiler builds it (docs/native.md),
# then LiteRT, the fastest interpreter per step on Arm and x86 (../shared/notes/measurements.md),
# numpy the one that is always there
_OPENERS: dict[str, Callable[[Bundle, str], Backend]] = {
    "native": _native,  # the bundle's C, built with the system compiler (native_build.py)
    "litert": _litert,
    "onnxruntime": _onnxruntime,
    "numpy": _numpy,
}
# the one list of backend names, in that order; the CLI, boards and tests read it
BACKENDS: tuple[str, ...] = tuple(_OPENERS)


# which model file format (the manifest's `backend` key, runtime/manifest.MODEL_FORMATS) each
# interpreter backend runs; numpy runs graph.json itself
MODEL_FILE_KIND = {"litert": "tflite", "onnxruntime": "onnx"}


def open_backend(bundle: Bundle, name: str, precision: str) -> Backend:
    return open_noting_fallbacks(bundle, name, precision)[0]


def open_noting_fallbacks(
    bundle: Bundle, name: str, precision: str
) -> tuple[Backend, tuple[str, ...]]:
    """The backend, and for "auto" why each INSTALLED backend it preferred failed to load the
    bundle (a backend that is not installed is passed over without a word). A named backend
    never falls back: its error is raised."""
    if name == "auto":
        errors, installed = [], available_backends()
        for candidate in BACKENDS:
            if not offers(bundle, candidate, precision):
                continue
            try:
                return _OPENERS[candidate](bundle, precision), tuple(
                    e for c, e in errors if c in installed
                )
            except BackendError as e:
                errors.append((candidate, f"{candidate}: {e}"))
        raise BackendError("no backend can run this bundle: " + "; ".join(e for _, e in errors))
    if name not in _OPENERS:
        raise BackendError(f"unknown backend {name!r}; choose auto, {', '.join(BACKENDS)}")
    return _OPENERS[name](bundle, precision), ()


def offers(bundle: Bundle, name: str, precision: str) -> bool:
    """Whether the bundle carries what backend `name` runs: export writes no C for a model
    with an op that has no C kernel (export/c), so native is then not on offer, as an
    interpreter that is not installed is not; every other backend runs every bundle."""
    if name != "native":
        return True
    from rnnedge.runtime.backends.native_backend import c_files

    return c_files(precision)[0] in bundle.files


def available_backends() -> list[str]:
    """Backends whose interpreter is importable here (numpy always is)."""
    import importlib.util

    from rnnedge.runtime.backends.native_build import compiler

    found = ["numpy"]
    if importlib.util.find_spec("onnxruntime"):
        found.insert(0, "onnxruntime")
    if importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec("tflite_runtime"):
        found.insert(0, "litert")
    if compiler() is not None:
        found.insert(0, "native")
    return found
