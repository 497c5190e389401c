"""ExportConfig: everything `export_bundle` takes besides the model, its example and the
output path, checked once before any work starts (each problem one clear line)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rnnedge.errors import ExportError, InputError
from rnnedge.export.chunk import check_chunk
from rnnedge.progress import Progress
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
        if self.percentile is not None and not 50 < self.percentile <= 100:
            raise InputError(f"calibration percentile {self.percentile!r} must be in (50, 100]")
        if self.quantize == "int8":
            _check_int8_calibration(self.calibration)
        check_chunk(self.chunk)

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)


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
