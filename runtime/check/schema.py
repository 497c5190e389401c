"""The JSON Schema (draft 2020-12) of `rnnedge check --json`. docs/check.md shows it verbatim
(a test keeps the two equal). Within schema rnnedge.check/1 fields are only ever added;
removing or changing one makes rnnedge.check/2."""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "rnnedge.check/1"

_NUM = {"type": ["number", "null"]}  # null: the value was NaN or Inf (see "violations")
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_TASK = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["kind", "argmax_agreement", "accuracy", "reference_accuracy"],
            "properties": {
                "kind": {"const": "classification"},
                "argmax_agreement": _NUM,
                "accuracy": _NUM,
                "reference_accuracy": _NUM,
            },
        },
        {
            "type": "object",
            "required": ["kind", "rmse"],
            "properties": {"kind": {"const": "regression"}, "rmse": _NUM},
        },
    ]
}

_OUTPUT = {
    "type": "object",
    "required": [
        "name",
        "kind",
        "passed",
        "violations",
        "max_abs_err",
        "scaled_abs_err",
        "range_rel_err",
        "rel_l2",
        "cosine",
        "drift",
        "task",
    ],
    "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["output", "state"]},
        "passed": {"type": "boolean"},
        "violations": {"type": "array", "items": {"type": "string"}},
        "max_abs_err": _NUM,
        "scaled_abs_err": _NUM,
        "range_rel_err": _NUM,
        "rel_l2": _NUM,
        "cosine": _NUM,
        "drift": {
            "type": "object",
            "required": ["window_steps", "window_max_abs_err", "ratio"],
            "properties": {
                "window_steps": {"type": "integer", "minimum": 0},
                "window_max_abs_err": {"type": "array", "items": _NUM},
                "ratio": _NUM,
            },
        },
        "task": _TASK,
    },
}

_RESULT = {
    "type": "object",
    "required": ["backend", "precision", "status", "reason", "budget", "seconds", "outputs"],
    "properties": {
        "backend": {"type": "string"},
        "precision": {"type": "string"},
        "status": {"enum": ["pass", "fail", "error", "skipped"]},
        "reason": {"type": "string"},
        "budget": {"type": "object", "additionalProperties": {"type": "number"}},
        "seconds": _NUM,
        "outputs": {"type": "array", "items": _OUTPUT},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "rnnedge check report",
    "type": "object",
    "required": [
        "schema",
        "passed",
        "versions",
        "bundle",
        "reference",
        "inputs",
        "task",
        "summary",
        "results",
    ],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "passed": {"type": "boolean"},
        "versions": _STR_MAP,
        "bundle": {
            "type": "object",
            "required": ["path", "sha256", "producer"],
            "properties": {
                "path": {"type": "string"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "producer": {"type": "string"},
            },
        },
        "reference": {"enum": ["golden", "numpy", "torch"]},
        "inputs": {
            "type": "object",
            "required": ["source", "path", "sequences", "steps", "looped"],
            "properties": {
                "source": {"enum": ["golden", "data"]},
                "path": {"type": ["string", "null"]},
                "sequences": {"type": "integer", "minimum": 1},
                "steps": {"type": "integer", "minimum": 1},
                "looped": {"type": "boolean"},
            },
        },
        "task": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["kind", "output", "class_axis"],
                    "properties": {
                        "kind": {"enum": ["classification", "regression"]},
                        "output": {"type": "string"},
                        "class_axis": {"type": "integer"},
                    },
                },
            ]
        },
        "summary": {
            "type": "object",
            "required": ["pass", "fail", "error", "skipped"],
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "results": {"type": "array", "items": _RESULT},
    },
}
