"""What a benchmark records about the machine: CPU model and frequency, versions, memory,
and on a Raspberry Pi the temperature and throttle flags. Everything is read from /proc,
/sys and (when installed) vcgencmd; a value that cannot be read is None, never a guess."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("rnnedge", "numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime", "torch", "onnx")
THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")
# newer Raspberry Pi kernels expose the firmware's throttle flags without vcgencmd
THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")


def versions() -> dict[str, str | None]:
    """Installed versions (read from package metadata, so nothing heavy gets imported)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, object]:
    cpuinfo = _read(Path("/proc/cpuinfo")) or ""
    model = _field(cpuinfo, "model name") or _field(cpuinfo, "Model") or platform.processor()
    mhz = _int(CPUFREQ / "scaling_cur_freq")
    max_mhz = _int(CPUFREQ / "cpuinfo_max_freq")
    cpu_mhz = mhz / 1e3 if mhz else _float(_field(cpuinfo, "cpu MHz"))
    return {
        "cpu_model": model or None,
        "cpu_mhz": cpu_mhz,
        "cpu_max_mhz": max_mhz / 1e3 if max_mhz else None,
        "governor": _read(CPUFREQ / "scaling_governor"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python_impl": sys.implementation.name,
    }


def thermal() -> dict[str, object]:
    """Temperature in degrees C and the firmware's throttle flags (0x0 = never throttled)."""
    temp = _int(THERMAL)
    throttled = _read(THROTTLED)
    if throttled is None and shutil.which("vcgencmd"):
        out = _run(["vcgencmd", "get_throttled"])  # "throttled=0x50000"
        throttled = (out.partition("=")[2] or None) if out else None
    if throttled is not None and not throttled.startswith("0x"):
        throttled = hex(int(throttled, 16)) if re.fullmatch(r"[0-9a-fA-F]+", throttled) else None
    return {"temperature_c": temp / 1e3 if temp is not None else None, "throttled": throttled}


def rss_mib() -> float | None:
    """The resident set size of this process now."""
    status = _read(Path("/proc/self/status")) or ""
    kb = _field(status, "VmRSS")
    return float(kb.split()[0]) / 1024 if kb else None


def peak_rss_mib() -> float:
    """The largest resident set this process has had so far (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _run(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    return int(text) if text and text.lstrip("-").isdigit() else None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _field(text: str, key: str) -> str | None:
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() == key:
            return v.strip()
    return None
