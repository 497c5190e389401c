"""manifest.json of a bundle (format version 1): the contract between export and runtime.

Meaning lives in named fields. A reader refuses another format name and an unknown MAJOR
version; a newer minor version of the same major only adds fields, which older readers ignore.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rnnedge.errors import BundleError, GraphError
from rnnedge.runtime.graph import Graph, TensorSpec
from rnnedge.runtime.stages import StageSpec, stages_from

FORMAT = "rnnedge.bundle"
# 1.1: budgets, task, batch_axis (readers of 1.0 ignore them); 1.2: stages, an offline program
# (runtime/stages.py) and chunk, K-step models (runtime/chunk.py); without them a 1.1 bundle
FORMAT_VERSION = "1.2"
MAX_MANIFEST_BYTES = 1 << 20
# the model file formats a bundle can hold (a ModelFile's `backend` key: the bundle contract)
MODEL_FORMATS = ("onnx", "tflite")
PRECISIONS = ("float", "int8", "int8-dynamic")
# What `rnnedge check` holds each precision to, per metric (see docs/check.md). Export writes
# these; a bundle written before budgets existed reads as if it had the float default.
DEFAULT_BUDGETS: dict[str, dict[str, float]] = {"float": {"scaled_abs_err": 1e-5}}
TASK_KINDS = ("classification", "regression")


@dataclass(frozen=True, kw_only=True)
class StateSpec:
    input: str
    output: str
    shape: tuple[int, ...]
    init: str  # the name of the initial value in weights.npz
    init_is_zero: bool
    dtype: str = "float32"


def state_specs(graph: Graph) -> tuple[StateSpec, ...]:
    """The manifest's states of `graph`: each state's tensors, shape and initial value."""
    return tuple(
        StateSpec(
            input=s.input,
            output=s.output,
            shape=graph.spec(s.input).shape,
            init=s.init,
            init_is_zero=not graph.constants[s.init].any(),
        )
        for s in graph.states
    )


@dataclass(frozen=True, kw_only=True)
class ModelFile:
    path: str
    backend: str  # "onnx" | "tflite"
    precision: str  # "float" | "int8" | "int8-dynamic"

    def __post_init__(self) -> None:
        if self.backend not in MODEL_FORMATS or self.precision not in PRECISIONS:
            raise BundleError(f"manifest: model file {self.path!r} has unknown backend/precision")


# the float model files every streaming bundle (and every stage of an offline one) holds
FLOAT_MODEL_FILES = (
    ModelFile(path="model.onnx", backend="onnx", precision="float"),
    ModelFile(path="model.tflite", backend="tflite", precision="float"),
)


@dataclass(frozen=True, kw_only=True)
class Task:
    """What the model's output means, so `rnnedge check` can report a task metric.
    output: the data output the task reads (None: the first); class_axis: classification's
    class axis in that output."""

    kind: str  # "classification" | "regression"
    output: str | None = None
    class_axis: int = -1

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise BundleError(f"manifest: task kind {self.kind!r} is not one of {TASK_KINDS}")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    producer: str
    inputs: tuple[TensorSpec, ...]  # data inputs, then state inputs (graph order)
    outputs: tuple[TensorSpec, ...]  # data outputs, then state outputs
    states: tuple[StateSpec, ...]
    models: tuple[ModelFile, ...]
    files: dict[str, str]  # file name -> sha256 hex, for every file but manifest.json
    parity: dict[str, Any] = field(default_factory=dict)  # export-time max abs error per backend
    int8_scheme: str | None = None
    # precision -> {metric: limit} for `rnnedge check`
    budgets: dict[str, dict[str, float]] = field(
        default_factory=lambda: {p: dict(b) for p, b in DEFAULT_BUDGETS.items()}
    )
    task: Task | None = None
    # why streams(n) cannot batch this model ("" when the inputs carry a batch_axis)
    unbatched_why: str = ""
    # full int8 against float at export (export/int8_fidelity.py): budget, per split and
    # output the error, agreement and drift, the tensors kept float; {} without int8
    int8_fidelity: dict[str, Any] = field(default_factory=dict)
    stages: tuple[StageSpec, ...] = ()  # an offline program's stages; () for a streaming model
    chunk: int = 0  # K of the K-step chunk models (runtime/chunk.py); 0: none
    format: str = FORMAT
    format_version: str = FORMAT_VERSION

    @property
    def step_input(self) -> TensorSpec:
        return self.inputs[0]

    def to_json(self) -> str:
        d = {
            "format": self.format,
            "format_version": self.format_version,
            "producer": self.producer,
            "step_input": self.step_input.to_json(),
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "states": [_state_json(s) for s in self.states],
            "models": [vars(m) for m in self.models],
            "int8_scheme": self.int8_scheme,
            "files": dict(sorted(self.files.items())),
            "parity": self.parity,
            "budgets": self.budgets,
            "task": vars(self.task) if self.task else None,
            "unbatched_why": self.unbatched_why,
        }
        if self.stages:
            d["stages"] = [s.to_json() for s in self.stages]
        if self.chunk:
            d["chunk"] = self.chunk
        if self.int8_fidelity:
            d["int8_fidelity"] = self.int8_fidelity
        try:  # strict JSON: NaN and Infinity are not JSON, other readers refuse them
            return json.dumps(d, indent=2, sort_keys=False, allow_nan=False) + "\n"
        except ValueError as e:
            raise BundleError(f"manifest.json: a value is not finite ({e})") from e

    @classmethod
    def from_json(cls, text: bytes) -> Manifest:
        if len(text) > MAX_MANIFEST_BYTES:
            raise BundleError(f"manifest.json is {len(text)} bytes (limit {MAX_MANIFEST_BYTES})")
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:  # ValueError: also over-long integer literals
            raise BundleError(f"manifest.json is not valid JSON: {e}") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BundleError(f"manifest.json: not an rnnedge bundle (format must be {FORMAT!r})")
        _check_version(d.get("format_version"))
        try:
            return cls(
                producer=str(d.get("producer", "")),
                inputs=tuple(TensorSpec.from_json(t) for t in _list(d, "inputs")),
                outputs=tuple(TensorSpec.from_json(t) for t in _list(d, "outputs")),
                states=tuple(_state_from(s) for s in _list(d, "states")),
                models=tuple(_model_from(m) for m in _list(d, "models")),
                files=_files(d.get("files")),
                parity=d.get("parity") if isinstance(d.get("parity"), dict) else {},
                int8_scheme=d.get("int8_scheme") if isinstance(d.get("int8_scheme"), str) else None,
                budgets=_budgets(d.get("budgets")),
                task=_task(d.get("task")),
                unbatched_why=str(d.get("unbatched_why") or ""),
                int8_fidelity=_dict(d.get("int8_fidelity")),
                stages=stages_from(d.get("stages")),
                chunk=int(d.get("chunk") or 0),
                format_version=d["format_version"],
            )
        except (GraphError, KeyError, TypeError, ValueError) as e:
            raise BundleError(f"manifest.json: {e}") from e


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _check_version(v: Any) -> None:
    major = str(v).split(".")[0]
    if not isinstance(v, str) or major != FORMAT_VERSION.split(".")[0]:
        raise BundleError(
            f"manifest.json: bundle format version {v!r} is not supported by this rnnedge "
            f"(reads {FORMAT_VERSION.split('.')[0]}.x); re-export it or upgrade rnnedge"
        )


def _list(d: dict, key: str) -> list:
    v = d.get(key)
    if not isinstance(v, list):
        raise BundleError(f"manifest.json: field {key!r} must be a list")
    return v


def _state_json(s: StateSpec) -> dict[str, Any]:
    return {**vars(s), "shape": list(s.shape)}


def _state_from(d: Any) -> StateSpec:
    if not isinstance(d, dict):
        raise BundleError("manifest.json: each state must be an object")
    spec = TensorSpec.from_json(
        {"name": d.get("input"), "shape": d.get("shape"), "dtype": d.get("dtype")}
    )
    return StateSpec(
        input=spec.name,
        output=str(d["output"]),
        shape=spec.shape,
        init=str(d["init"]),
        init_is_zero=bool(d.get("init_is_zero", False)),
    )


def _model_from(d: Any) -> ModelFile:
    if not isinstance(d, dict):
        raise BundleError("manifest.json: each model must be an object")
    return ModelFile(path=str(d["path"]), backend=str(d["backend"]), precision=str(d["precision"]))


def _files(d: Any) -> dict[str, str]:
    if not isinstance(d, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in d.items()
    ):
        raise BundleError("manifest.json: field 'files' must map file names to sha256 strings")
    for name in d:
        if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
            raise BundleError(f"manifest.json: file name {name!r} is not a plain file name")
    return dict(d)


def _budgets(d: Any) -> dict[str, dict[str, float]]:
    if d is None:  # written before budgets existed
        return {p: dict(b) for p, b in DEFAULT_BUDGETS.items()}
    ok = isinstance(d, dict) and all(
        isinstance(p, str)
        and isinstance(b, dict)
        and all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in b.items()
        )
        for p, b in d.items()
    )
    if not ok:
        raise BundleError("manifest.json: 'budgets' must map precisions to {metric: number}")
    return {p: {k: float(v) for k, v in b.items()} for p, b in d.items()}


def _task(d: Any) -> Task | None:
    if d is None:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
        raise BundleError("manifest.json: 'task' must be an object with a 'kind'")
    output = d.get("output")
    return Task(
        kind=d["kind"],
        output=str(output) if output is not None else None,
        class_axis=int(d.get("class_axis", -1)),
    )
