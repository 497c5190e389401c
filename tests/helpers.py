"""Comparison helpers and model sources shared by the tests."""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

TOL = 1e-5


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str, tol: float = TOL) -> None:
    """|actual - expected| <= tol, absolute, or relative to |expected| where values exceed 1."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} > {tol * scale:.1e}"


def litert_interpreter(data: bytes, delegate: bool = False):
    """A LiteRT interpreter on a .tflite file's bytes: its builtin kernels only, unless
    `delegate` (then XNNPACK, as "auto" gives on the board)."""
    from ai_edge_litert import interpreter as litert

    kind = litert.OpResolverType
    resolver = kind.AUTO if delegate else kind.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = litert.Interpreter(model_content=data, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def litert_invoke(interp, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One invoke with `feeds` by input name; every output by name."""
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], feeds[d["name"]])
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def zoo_int8_exporter(tmp_path_factory, steps: int, count: int) -> Callable[[str], Path]:
    """get(name) -> the path of zoo model `name` (tests/models.py) exported with int8, once per
    name, calibrated on `count` seeded random sequences of `steps` steps (for a module-scoped
    fixture: the native tests share it)."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            from models import build

            from rnnedge.export.pipeline import export_bundle

            model, example = build(name)
            shape = tuple((example[0] if isinstance(example, tuple) else example).shape)
            rng = np.random.default_rng(0)
            calib = [rng.standard_normal((steps, *shape)).astype(np.float32) for _ in range(count)]
            out = tmp_path_factory.mktemp("zoo_int8") / f"{name}.rnnedge"
            with warnings.catch_warnings():  # golden data beyond calibration: expected
                warnings.simplefilter("ignore")
                cache[name] = export_bundle(model, example, out, quantize="int8", calibration=calib)
        return cache[name]

    return get


def random_state(graph, rng: np.random.Generator) -> list[np.ndarray]:
    """A random state of the right shapes, in [-1, 1] as h would be (c gets a wider range)."""
    return [rng.uniform(-1, 1, graph.spec(s.input).shape).astype(np.float32) for s in graph.states]


# A GRU + Linear model file, as a user writes one for `rnnedge export MODEL.py:make`; the CLI
# tests add the factories they need after it
NET_PY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(6, 10, batch_first=True)
            self.head = nn.Linear(10, 3)

        def forward(self, x):
            return self.head(self.gru(x)[0])

    def make():
        torch.manual_seed(0)
        return Net()
    """
)
