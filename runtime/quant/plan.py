"""quant.json: the QuantPlan, the one int8 scheme that every backend of a bundle shares.

The plan is made once on the Graph (rnnedge/quantize/plan.py) and read here by the runtime,
so this module needs numpy only. Precision "int8-dynamic": each planned `linear` has int8
weights, symmetric, one scale per output channel (zero point 0); its activations stay float
and are quantized at run time by the kernel (see int8_dynamic.py for the exact arithmetic).
Tensors the plan leaves float are listed with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnedge.errors import BundleError

QUANT_FORMAT = "rnnedge.quant"
QUANT_VERSION = 1
SCHEMES = ("int8-dynamic", "int8")
INT_DTYPES = ("int8", "int16", "int32")  # "int8" full integer adds int16 (LSTM cell), int32 bias
QMAX = 127  # symmetric int8 weights use [-127, 127]: -128 would make the range lopsided


@dataclass(frozen=True, kw_only=True)
class TensorQuant:
    """How one tensor is stored. dtype "int8": q = clip(round(w / scale[c]), -127, 127) with c
    the index along `axis`; dtype "float32": left float, `why` says why."""

    tensor: str
    dtype: str  # "int8" | "float32"
    node: str = ""  # the output of the node that reads it
    axis: int | None = None
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    # "weight" (from the value); scheme "int8" adds "bias", "calibrated" and "fixed"
    # (activations: axis None, one scale; see quantize/int8.py)
    source: str = "weight"
    why: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in (*INT_DTYPES, "float32"):
            raise BundleError(f"quant.json: tensor {self.tensor!r} has dtype {self.dtype!r}")
        if self.dtype in INT_DTYPES and (
            not self.scale
            or len(self.scale) != len(self.zero_point)
            or not all(np.isfinite(s) and s > 0 for s in self.scale)
        ):
            raise BundleError(f"quant.json: tensor {self.tensor!r} has bad scales/zero points")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"tensor": self.tensor, "dtype": self.dtype, "node": self.node}
        if self.dtype in INT_DTYPES:
            d |= {"axis": self.axis, "scale": list(self.scale), "zero_point": list(self.zero_point)}
        else:
            d["why"] = self.why
        d["source"] = self.source  # a float activation too: without it, it would read as weight
        return d

    @classmethod
    def from_json(cls, d: Any) -> TensorQuant:
        if not isinstance(d, dict):
            raise BundleError("quant.json: each tensor entry must be an object")
        try:
            return cls(
                tensor=str(d["tensor"]),
                dtype=str(d["dtype"]),
                node=str(d.get("node", "")),
                axis=None if d.get("axis") is None else int(d["axis"]),
                scale=tuple(float(s) for s in d.get("scale", ())),
                zero_point=tuple(int(z) for z in d.get("zero_point", ())),
                source=str(d.get("source", "weight")),
                why=str(d.get("why", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"quant.json: bad tensor entry ({e!r})") from e


@dataclass(frozen=True, kw_only=True)
class QuantPlan:
    scheme: str  # "int8-dynamic"
    tensors: tuple[TensorQuant, ...]

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise BundleError(f"quant.json: scheme {self.scheme!r} is not one of {SCHEMES}")

    def weight(self, node_output: str) -> TensorQuant | None:
        """The int8 weight of the node producing `node_output`, or None if it runs float."""
        for t in self.tensors:
            if t.node == node_output and t.dtype == "int8":
                return t
        return None

    def activation(self, tensor: str) -> TensorQuant | None:
        """Scheme "int8": the entry of activation `tensor` (not a weight or bias), if any."""
        for t in self.tensors:
            if t.tensor == tensor and t.source not in ("weight", "bias"):
                return t
        return None

    @property
    def quantized(self) -> tuple[TensorQuant, ...]:
        return tuple(t for t in self.tensors if t.dtype == "int8")

    @property
    def left_float(self) -> tuple[TensorQuant, ...]:
        return tuple(t for t in self.tensors if t.dtype == "float32")

    def to_json(self) -> str:
        d = {
            "format": QUANT_FORMAT,
            "version": QUANT_VERSION,
            "scheme": self.scheme,
            "tensors": [t.to_json() for t in self.tensors],
        }
        return json.dumps(d, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: bytes | str) -> QuantPlan:
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise BundleError(f"quant.json is not valid JSON: {e}") from e
        if not isinstance(d, dict) or d.get("format") != QUANT_FORMAT:
            raise BundleError(f"quant.json: not an rnnedge plan (format must be {QUANT_FORMAT!r})")
        if d.get("version") != QUANT_VERSION:
            raise BundleError(f"quant.json: version {d.get('version')!r} unsupported (want 1)")
        tensors = d.get("tensors")
        if not isinstance(tensors, list):
            raise BundleError("quant.json: field 'tensors' must be a list")
        return cls(scheme=str(d.get("scheme")), tensors=tuple(map(TensorQuant.from_json, tensors)))


def quantize_weight(w: np.ndarray, scale: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """int8 weights [N, K] from float w [N, K] and per-output-channel scales [N] (axis 0):
    round half to even, as ONNX QuantizeLinear, then clipped to the symmetric range."""
    s = np.asarray(scale, np.float32)[:, None]
    return np.clip(np.rint(np.asarray(w, np.float32) / s), -QMAX, QMAX).astype(np.int8)


def read_plan(files: dict[str, bytes], where: str) -> QuantPlan:
    if "quant.json" not in files:
        raise BundleError(f"{where}: has no quant.json (the bundle was exported without int8)")
    return QuantPlan.from_json(files["quant.json"])
