"""Board profiles: one JSON data file per board in boards/profiles/, read with the stdlib.

Every number is a `Figure`: a value, a kind and a source. The kind says plainly how much to
trust it: "measured" (measured on that machine), "datasheet" (vendor or Arm documentation),
"derived" (computed from other figures, e.g. the floors in ../shared/notes/measurements.md) or
"estimate" (a reasoned guess, not measured). No Raspberry Pi figure here is measured on a
real board yet; see docs/boards.md.

Board detection reads /proc/device-tree/model and /proc/cpuinfo; `detect_board` takes their
contents as strings so that tests can pass sample files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnedge.errors import ProfileError
from rnnedge.runtime.backends import BACKENDS

PROFILE_DIR = Path(__file__).parent
HOST = "host"
KINDS = ("measured", "datasheet", "derived", "estimate")
L2_SCOPES = ("shared", "per-core")
# every profile must give all of these, each with its source
FIGURES = (
    "clock_ghz",
    "cores",
    "l1d_kib",
    "l2_kib",
    "l3_kib",
    "ram_gib",
    "dram_bandwidth_gbs",
    "fp32_macs_per_cycle",
    "int8_macs_per_cycle",
    "recommended_threads",
    "python_slowdown",
    "target_p50_us",
)
ZERO_ALLOWED = ("l3_kib",)  # every other figure must be > 0


@dataclass(frozen=True, kw_only=True)
class Figure:
    value: float
    kind: str
    source: str


@dataclass(frozen=True, kw_only=True)
class BoardProfile:
    name: str
    title: str
    aliases: tuple[str, ...]
    soc: str
    core_type: str
    l2_scope: str
    simd: tuple[str, ...]
    recommended_backend: str
    device_tree_models: tuple[str, ...]
    revision_types: tuple[int, ...]
    figures: dict[str, Figure]

    def value(self, figure: str) -> float:
        return self.figures[figure].value


def parse_profile(doc: Any, *, where: str) -> BoardProfile:
    """A BoardProfile from a parsed JSON document; a ProfileError names the field at fault."""
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: a profile must be a JSON object")
    detect = _get(doc, "detect", dict, where)
    figures_doc = _get(doc, "figures", dict, where)
    figures = {name: _figure(figures_doc, name, where) for name in FIGURES}
    unknown = sorted(set(figures_doc) - set(FIGURES))
    if unknown:
        raise ProfileError(f"{where}: field 'figures.{unknown[0]}' is not a known figure")
    profile = BoardProfile(
        name=_get(doc, "name", str, where),
        title=_get(doc, "title", str, where),
        aliases=tuple(_strings(doc, "aliases", where)),
        soc=_get(doc, "soc", str, where),
        core_type=_get(doc, "core_type", str, where),
        l2_scope=_choice(doc, "l2_scope", L2_SCOPES, where),
        simd=tuple(_strings(doc, "simd", where)),
        recommended_backend=_choice(doc, "recommended_backend", BACKENDS, where),
        device_tree_models=tuple(_strings(detect, "device_tree_models", where, "detect.")),
        revision_types=tuple(_ints(detect, "revision_types", where)),
        figures=figures,
    )
    if figures["recommended_threads"].value != int(figures["recommended_threads"].value):
        raise ProfileError(f"{where}: field 'figures.recommended_threads.value' must be whole")
    return profile


def load_profile_file(path: str | Path) -> BoardProfile:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ProfileError(f"{path}: cannot read the profile ({e.strerror})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: not valid JSON ({e})") from e
    profile = parse_profile(doc, where=str(path))
    if profile.name != path.stem:
        raise ProfileError(f"{path}: field 'name' is {profile.name!r}, must match the file name")
    return profile


def all_profiles(directory: Path = PROFILE_DIR) -> dict[str, BoardProfile]:
    profiles = [load_profile_file(p) for p in sorted(directory.glob("*.json"))]
    return {p.name: p for p in profiles}


def get_profile(name: str, directory: Path = PROFILE_DIR) -> BoardProfile:
    """A profile by name or alias ("pi4" finds pi4b)."""
    profiles = all_profiles(directory)
    key = name.lower()
    for p in profiles.values():
        if key == p.name or key in p.aliases:
            return p
    raise ProfileError(f"unknown board {name!r}; choose one of {', '.join(profiles)}")


def detect_board(
    device_tree_model: str | None,
    cpuinfo: str | None,
    profiles: dict[str, BoardProfile] | None = None,
) -> tuple[str, str]:
    """(board name, how it was recognised) from the contents of /proc/device-tree/model and
    /proc/cpuinfo (either may be None when absent). Anything unrecognised is "host"."""
    profiles = profiles if profiles is not None else all_profiles()
    model = (device_tree_model or "").replace("\x00", "").strip()
    if not model:
        model = _cpuinfo_field(cpuinfo, "Model") or ""
    for p in profiles.values():
        if any(model.startswith(m) for m in p.device_tree_models):
            return p.name, f"model {model!r}"
    kind = _revision_type(_cpuinfo_field(cpuinfo, "Revision"))
    for p in profiles.values():
        if kind is not None and kind in p.revision_types:
            return p.name, f"cpuinfo revision type 0x{kind:02x}"
    cpu = _cpuinfo_field(cpuinfo, "model name") or model or "unknown CPU"
    return HOST, f"not a known board ({cpu})"


def detect_this_machine() -> tuple[str, str]:
    return detect_board(_read("/proc/device-tree/model"), _read("/proc/cpuinfo"))


def _read(path: str) -> str | None:
    try:
        return Path(path).read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _cpuinfo_field(cpuinfo: str | None, key: str) -> str | None:
    for line in (cpuinfo or "").splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() == key:
            return v.strip()
    return None


def _revision_type(revision: str | None) -> int | None:
    # New-style revision codes (bit 23 set) hold the board type in bits 4-11
    # (raspberrypi.com/documentation/computers/raspberry-pi.html, "Revision codes").
    if not revision or not re.fullmatch(r"[0-9a-fA-F]+", revision):
        return None
    code = int(revision, 16)
    return (code >> 4) & 0xFF if code & (1 << 23) else None


def _get(doc: dict, key: str, typ: type, where: str, prefix: str = "") -> Any:
    v = doc.get(key)
    if not isinstance(v, typ) or isinstance(v, bool):
        raise ProfileError(f"{where}: field '{prefix}{key}' must be a {typ.__name__}, got {v!r}")
    return v


def _strings(doc: dict, key: str, where: str, prefix: str = "") -> list[str]:
    v = _get(doc, key, list, where, prefix)
    if not all(isinstance(s, str) for s in v):
        raise ProfileError(f"{where}: field '{prefix}{key}' must be a list of strings")
    return v


def _ints(doc: dict, key: str, where: str) -> list[int]:
    v = _get(doc, key, list, where, "detect.")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise ProfileError(f"{where}: field 'detect.{key}' must be a list of integers")
    return v


def _choice(doc: dict, key: str, choices: tuple[str, ...], where: str) -> str:
    v = _get(doc, key, str, where)
    if v not in choices:
        raise ProfileError(f"{where}: field {key!r} is {v!r}, must be one of {', '.join(choices)}")
    return v


def _figure(figures: dict, name: str, where: str) -> Figure:
    field = f"figures.{name}"
    d = figures.get(name)
    if not isinstance(d, dict):
        raise ProfileError(f"{where}: field '{field}' is missing (an object: value, kind, source)")
    v = d.get("value")
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
        raise ProfileError(f"{where}: field '{field}.value' must be a number, got {v!r}")
    if v < 0 or (v == 0 and name not in ZERO_ALLOWED):
        raise ProfileError(f"{where}: field '{field}.value' must be positive, got {v!r}")
    kind = d.get("kind")
    if kind not in KINDS:
        raise ProfileError(f"{where}: field '{field}.kind' must be one of {', '.join(KINDS)}")
    source = d.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ProfileError(f"{where}: field '{field}.source' must say where the number comes from")
    return Figure(value=float(v), kind=kind, source=source)


def boards_report(directory: Path = PROFILE_DIR) -> str:
    """The profiles as a table, and which one this machine is, for `rnnedge boards`."""
    profiles = all_profiles(directory)
    here, why = detect_this_machine()
    head = "{:9s} {:28s} {:11s} {:>7s} {:>5s} {:>8s} {:>8s} {:>9s} {:>8s}  {}"
    lines = [
        head.format(
            "name",
            "board",
            "core",
            "GHz",
            "cores",
            "L2 KiB",
            "L3 KiB",
            "DRAM GB/s",
            "fp32 MAC",
            "SIMD",
        )
    ]
    for p in profiles.values():
        v = p.value
        lines.append(
            f"{p.name:9s} {p.title[:28]:28s} {p.core_type[:11]:11s} {v('clock_ghz'):7g} "
            f"{v('cores'):5g} {v('l2_kib'):8g} {v('l3_kib'):8g} {v('dram_bandwidth_gbs'):9g} "
            f"{v('fp32_macs_per_cycle'):8g}  {','.join(p.simd)}"
        )
    counts = {k: 0 for k in KINDS}
    for p in profiles.values():
        for f in p.figures.values():
            counts[f.kind] += 1
    lines += [
        "",
        "figures by kind: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + "; no Raspberry Pi figure is measured on a real board yet (docs/boards.md, or the "
        "JSON files in boards/profiles/ for every source)",
        f"this machine: {here} ({why})",
    ]
    return "\n".join(lines)
