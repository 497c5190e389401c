"""The `stages` section of manifest.json (format 1.2): an offline program (docs/format.md).

A bundle with stages runs only over whole sequences (a bidirectional model): each stage is a
one-step model of its own, stepped forward or backward over the buffered sequence, reading
the tensors earlier stages produced. Its files carry the stage name as a prefix
(`s1.manifest.json`, `s1.graph.json`, `s1.model.tflite`, ...) and form a version-1 bundle of
their own once the prefix is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnedge.errors import BundleError

DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True, kw_only=True)
class StageSpec:
    name: str  # the prefix of its files: "{name}.manifest.json", "{name}.graph.json", ...
    direction: str  # "forward": t = 0 .. T-1; "backward": t = T-1 .. 0, from the initial state
    # program tensors (the model input or earlier stages' outputs), each flattened and
    # concatenated in this order into the stage's one input of shape (1, N)
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise BundleError(f"manifest: stage {self.name!r} direction {self.direction!r}")
        if not self.name.isidentifier() or not self.inputs:
            raise BundleError(f"manifest: stage {self.name!r} needs a plain name and inputs")

    def file(self, name: str) -> str:
        """The bundle file of this stage's `name` (a file name of its own bundle)."""
        return f"{self.name}.{name}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "direction": self.direction, "inputs": list(self.inputs)}


def stages_from(d: Any) -> tuple[StageSpec, ...]:
    if d is None:  # a streaming bundle (and every bundle before format 1.2)
        return ()
    if not isinstance(d, list) or not all(isinstance(s, dict) for s in d):
        raise BundleError("manifest.json: 'stages' must be a list of objects")
    out = []
    for s in d:
        inputs = s.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise BundleError("manifest.json: each stage's 'inputs' must be a list of names")
        out.append(
            StageSpec(
                name=str(s.get("name")), direction=str(s.get("direction")), inputs=tuple(inputs)
            )
        )
    return tuple(out)
