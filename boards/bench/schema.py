"""The JSON schema of `rnnedge bench --json` (bench_schema.json beside this file) and a small
validator for the subset of JSON Schema it uses: type, const, enum, required, properties,
additionalProperties, items, minimum and local $ref. No dependency, so a board can check its
own results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent / "bench_schema.json"
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def bench_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def errors(doc: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Every place `doc` breaks the schema, as "path: problem"; empty when it is valid."""
    root = schema if schema is not None else bench_schema()
    found: list[str] = []
    _check(doc, root, root, "$", found)
    return found


def _is(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name != "boolean":
        return False  # JSON's true is not the number 1
    return isinstance(value, _TYPES[name])


def _check(v: Any, s: dict[str, Any], root: dict[str, Any], at: str, out: list[str]) -> None:
    if "$ref" in s:
        ref = s["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        _check(v, target, root, at, out)
        return
    types = s.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is(v, t) for t in names):
            out.append(f"{at}: expected {' or '.join(names)}, got {type(v).__name__}")
            return
    if "const" in s and (v != s["const"] or type(v) is not type(s["const"])):
        out.append(f"{at}: must be {s['const']!r}, got {v!r}")
    if "enum" in s and v not in s["enum"]:
        out.append(f"{at}: {v!r} is not one of {s['enum']}")
    if "minimum" in s and _is(v, "number") and v < s["minimum"]:
        out.append(f"{at}: {v!r} is below the minimum {s['minimum']}")
    if isinstance(v, dict):
        _check_object(v, s, root, at, out)
    if isinstance(v, list) and "items" in s:
        for i, item in enumerate(v):
            _check(item, s["items"], root, f"{at}[{i}]", out)


def _check_object(v: dict, s: dict, root: dict, at: str, out: list[str]) -> None:
    props = s.get("properties", {})
    for key in s.get("required", []):
        if key not in v:
            out.append(f"{at}: missing required field {key!r}")
    extra = s.get("additionalProperties", True)
    for key, item in v.items():
        if key in props:
            _check(item, props[key], root, f"{at}.{key}", out)
        elif extra is False:
            out.append(f"{at}: unexpected field {key!r}")
        elif isinstance(extra, dict):
            _check(item, extra, root, f"{at}.{key}", out)
