"""What `rnnedge bench` times and how long: its configuration (see run.py for the method)."""

from __future__ import annotations

from dataclasses import dataclass

from rnnedge.errors import InputError

MODES = ("back-to-back", "paced")
# the fields that say how long each path is warmed up and timed
TIMING_FIELDS = (
    "warmup_steps",
    "warmup_seconds",
    "steps",
    "seconds",
    "paced_steps",
    "paced_seconds",
    "rounds",
)


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    bundle: str
    backends: tuple[str, ...] = ()  # empty: every installed backend
    precisions: tuple[str, ...] = ()  # empty: every precision in the manifest's models
    modes: tuple[str, ...] = MODES
    hop_ms: float = 10.0
    streams: tuple[int, ...] = (1,)
    warmup_steps: int = 200
    warmup_seconds: float = 0.2
    steps: int = 2000
    seconds: float = 1.0
    paced_steps: int = 250
    paced_seconds: float = 0.0
    rounds: int = 3
    checked: bool = True
    peers: bool = False
    model: str | None = None  # MODEL spec for the torch peers (as `rnnedge export` takes)
    weights: str | None = None
    board: str | None = None  # a profile name; None: detect this machine

    def __post_init__(self) -> None:
        for name in ("hop_ms", "warmup_seconds", "seconds", "paced_seconds"):
            if getattr(self, name) < 0:
                raise InputError(f"bench: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("steps", "paced_steps", "rounds"):
            if getattr(self, name) < 1:
                raise InputError(f"bench: {name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise InputError(f"bench: warmup_steps must be >= 0, got {self.warmup_steps}")
        if not self.streams or any(n < 1 for n in self.streams):
            raise InputError(f"bench: streams must be positive counts, got {self.streams}")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise InputError(f"bench: modes must be among {', '.join(MODES)}, got {self.modes}")
        if "paced" in self.modes and self.hop_ms <= 0:
            raise InputError("bench: paced mode needs hop_ms > 0")
