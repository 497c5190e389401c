"""ExportConfig: everything `export_bundle` takes besides the model, its example and the
output path, checked once before any work starts (each problem one clear line)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnedge.errors import ExportError, InputError
from rnnedge.export.chunk import check_chunk
from rnnedge.progress import Progress
from rnnedge.quantize.mixed import Int8Budget, int8_budget
from rnnedge.runtime.manifest import Task

QUANTIZE = ("none", "int8-dynamic", "int8")
# Activation ranges from fewer sequences are a guess: one sequence rarely visits the range of
# another (measured: 8 x 500 steps clipped an output by 8%, 20 x 500 did not).
MIN_CALIBRATION_SEQUENCES = 4


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """quantize: "none", "int8-dynamic" (int8 weights) or "int8" (full integer; needs
    `calibration`: input sequences (T, *step shape) run with the state carried to fix every
    activation's range, minmax or, with `percentile`, the [100 - p, p] percentiles).
    golden: input sequences (T, *step shape) for golden.npz; seeded random inputs if None.
    int8_budget: what full int8 must hold against float (quantize/mixed.py Int8Budget, or
    a dict of its fields; default <= 2% of each output's range, no drift); when int8 misses
    it, export keeps the most sensitive tensors float until it holds, or with `strict`
    refuses instead.
    task: what the output means, for `rnnedge check`'s task metric, e.g.
    {"kind": "classification"} or {"kind": "regression", "output": "y"} (see docs/check.md).
    progress: called with one line per stage (the library never prints).
    chunk: K, to add models of K steps unrolled that stream.run uses for whole chunks."""

    quantize: str = "none"
    calibration: tuple[np.ndarray, ...] | None = None
    percentile: float | None = None
    golden: tuple[np.ndarray, ...] | None = None
    task: Task | None = None
    progress: Progress | None = None
    int8_budget: Int8Budget | dict | None = None
    strict: bool = False
    chunk: int | None = None  # also emit K-step chunk models (runtime/chunk.py); None: not

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE:
            raise ExportError(f"quantize={self.quantize!r}: choose one of {', '.join(QUANTIZE)}")
        # iterables (a generator, a list the caller keeps) become tuples: read once, never
        # the caller's object
        for name in ("calibration", "golden"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, _sequences(value, name))
        object.__setattr__(self, "task", _task(self.task))
        if isinstance(self.int8_budget, dict):
            object.__setattr__(self, "int8_budget", int8_budget(self.int8_budget))
        if self.percentile is not None and not 50 < self.percentile <= 100:
            raise InputError(f"calibration percentile {self.percentile!r} must be in (50, 100]")
        if self.quantize == "int8":
            _check_int8_calibration(self.calibration)
        if self.percentile is not None and self.calibration is None:
            raise InputError("percentile sets how calibration is read: pass calibration too")
        check_chunk(self.chunk)

    def check_step(self, example: Any) -> None:
        """Calibration and golden sequences against the example's step input, before capture
        (seconds of work), in the words quantize/calibrate.check_sequences uses after it: each
        a (T, *step shape) array of finite numbers (rows of the step's size are accepted, the
        one shape rule of runtime/inputs.split_sequences)."""
        x = example[0] if isinstance(example, tuple) else example
        shape = tuple(getattr(x, "shape", ()))
        for name in ("calibration", "golden"):
            for i, seq in enumerate(getattr(self, name) or ()):
                what, arr = f"{name} sequence {i}", np.asarray(seq)
                if arr.dtype.kind not in "fiu":
                    raise InputError(f"{what}: dtype {arr.dtype} is not numeric")
                if arr.ndim < 1 or len(arr) == 0 or arr[0].size != int(np.prod(shape)):
                    raise InputError(
                        f"{what}: shape {list(arr.shape)} is not (T, {list(shape)}) with T >= 1"
                    )
                if not np.isfinite(arr).all():
                    raise InputError(f"{what}: holds NaN or Inf")

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)


def finite_golden(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch's golden outputs, refused when not finite: a model that outputs NaN or Inf on
    its golden inputs cannot be checked against, and JSON has no NaN to record it with."""
    for name, arr in arrays.items():
        if not np.isfinite(arr).all():
            raise ExportError(
                f"the model's output {name.partition('.')[2]!r} is NaN or Inf on the golden "
                f"inputs ({name.partition('.')[0]}): a bundle checked against it would pass "
                "anything; fix the model (or its weights) first"
            )
    return arrays


def _sequences(value: Iterable[np.ndarray], name: str) -> tuple[np.ndarray, ...]:
    try:  # an (N, T, *step) array is N sequences, as iterating it gives
        return tuple(value)
    except TypeError as e:
        raise InputError(f"{name} must be a list of arrays (T, *step shape): {e}") from e


def _task(task: Task | dict | None) -> Task | None:
    if task is None or isinstance(task, Task):
        return task
    if isinstance(task, dict):
        try:
            return Task(**task)
        except TypeError as e:  # an unknown key
            raise ExportError(f"task {task!r}: {e}") from e
    raise ExportError(f"task must be a dict like {{'kind': 'classification'}}, got {task!r}")


def _check_int8_calibration(calibration: tuple[np.ndarray, ...] | None) -> None:
    if calibration is None:
        raise ExportError(
            "quantize='int8' needs calibration sequences (--calibration data.npz, or "
            "calibration=[arrays]): full int8 fixes every activation's range from them"
        )
    if not calibration:
        raise InputError("calibration: no sequences given")
    if len(calibration) < MIN_CALIBRATION_SEQUENCES:
        raise ExportError(
            f"quantize='int8' needs at least {MIN_CALIBRATION_SEQUENCES} calibration "
            f"sequences, got {len(calibration)}: ranges from fewer rarely cover deployment data"
        )


def config_from(config: ExportConfig | None, options: dict) -> ExportConfig:
    """The config of an export_bundle call: a config, keyword options, or one amended by
    the other (a new config; the caller's is never changed)."""
    if config is None:
        return ExportConfig(**options)
    return dataclasses.replace(config, **options) if options else config
