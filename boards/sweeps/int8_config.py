"""What `make bench-int8` (boards/sweeps/int8.py) measures: its configuration, the model of
every kind x hidden size, the input sequences, and the result row of one path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnedge.errors import InputError
from rnnedge.runtime.backends import MODEL_FILE_KIND
from rnnedge.runtime.manifest import PRECISIONS as ALL_PRECISIONS

FEATURES, CLASSES = 40, 10
KINDS = ("gru", "lstm")
HIDDEN = (64, 128, 256, 512)
# the interpreters that run a model file (numpy runs the Graph: no file meets file there)
FILE_BACKENDS = tuple(MODEL_FILE_KIND)
# every precision, rows ordered from float through int8 weights only to full integer
PRECISIONS = tuple(sorted(ALL_PRECISIONS, key=lambda p: (p != "float", p == "int8")))
PEER_TAG = "peer"
CALLS = ("stream", "raw")

Say = Callable[[str], None]
Stepper = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class Int8BenchConfig:
    kinds: tuple[str, ...] = KINDS
    hidden: tuple[int, ...] = HIDDEN
    backends: tuple[str, ...] = FILE_BACKENDS
    steps: int = 1500  # timed calls per path per round
    rounds: int = 3
    warmup: int = 200  # untimed calls per path before each round
    calib_sequences: int = 4
    calib_steps: int = 100
    eval_steps: int = 200
    peers: bool = True
    tf_python: str | None = None  # a Python with tensorflow, for the LiteRT int8 peer
    work_dir: Path = Path("build/int8_bench")  # bundles (temporary) and the .tflite cache

    def __post_init__(self) -> None:
        if any(k not in KINDS for k in self.kinds) or not self.kinds:
            raise InputError(f"int8 bench: kinds must be among {KINDS}, got {self.kinds}")
        for name in ("steps", "rounds", "calib_sequences", "calib_steps", "eval_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"int8 bench: {name} must be >= 1")
        if not self.hidden or min(self.hidden) < 1:
            raise InputError(f"int8 bench: hidden sizes must be positive, got {self.hidden}")


@dataclass(frozen=True, kw_only=True)
class Row:
    kind: str
    hidden: int
    who: str  # "rnnedge" | "peer"
    name: str
    backend: str
    precision: str  # float | int8-dynamic | int8 (peers: what the tool calls it)
    call: str = "raw"  # "stream" (rnnedge.Stream.step) or "raw" (the peers' harness)
    weights_float: bool = False  # a peer that left its recurrent weights float
    file_bytes: int | None = None
    ops: dict[str, int] = field(default_factory=dict)
    latency_us: dict[str, float | None] | None = None
    max_abs_err: float | None = None  # of y against PyTorch float over eval_steps steps
    unavailable: str | None = None
    vs_float: float | None = None  # p50 / rnnedge float p50 on the same backend and call
    vs_best_peer: float | None = None  # p50 / best int8 peer p50 on the same backend
    vs_any_peer: float | None = None  # p50 / best int8 peer p50 on any backend


def make_model(kind: str, hidden: int):
    import torch
    from torch import nn

    class Kws(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rnn = nn.GRU if kind == "gru" else nn.LSTM
            self.rnn = rnn(FEATURES, hidden, batch_first=True)
            self.head = nn.Linear(hidden, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(x)[0])

    torch.manual_seed(hidden + (0 if kind == "gru" else 1))
    return Kws().eval()


def sequences(seed: int, count: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((steps, 1, 1, FEATURES)).astype(np.float32) for _ in range(count)]


def calibration(cfg: Int8BenchConfig) -> list[np.ndarray]:
    """The sequences every quantizer (ours and the peers') calibrates on."""
    return sequences(1, cfg.calib_sequences, cfg.calib_steps)
