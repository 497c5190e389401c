"""quant.json: the QuantPlan, the one int8 contract that every backend of a bundle shares.

The plan is made once on the Graph (quantize/int8_dynamic.py, quantize/int8.py) and read
here by the runtime, so this module needs numpy only. It holds the whole vocabulary:
  TensorQuant  one quant.json entry: how one tensor is stored (dtype, scales, zero points)
  QParams      the per-tensor parameters an integer kernel reads (`plan.params(name)`)
  Ranges       the calibrated range of every tensor (quantize/calibrate.py measures them)
  QuantPlan    the entries, indexed by tensor and node, plus the calibration record;
               `to_json` / `from_json` write and read quant.json whole
Precision "int8-dynamic": each planned `linear` has int8 weights, symmetric, one scale per
output channel (zero point 0); its activations stay float and are quantized at run time by
the kernel (see int8_dynamic.py for the exact arithmetic). Precision "int8" (full integer)
adds int32 biases and per-tensor activation parameters (see int8.py). Tensors the plan
leaves float are listed with the reason.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnedge.errors import BundleError
from rnnedge.runtime.quant.fixed import RANGES, round_away

QUANT_FORMAT = "rnnedge.quant"
QUANT_VERSION = 1
SCHEMES = ("int8-dynamic", "int8")
INT_DTYPES = ("int8", "int16", "int32")  # "int8" full integer adds int16 (LSTM cell), int32 bias
QMAX = 127  # symmetric int8 weights use [-127, 127]: -128 would make the range lopsided
# Ops that move integers without arithmetic: TFLite's int8 RESHAPE, STRIDED_SLICE,
# CONCATENATION and TRANSPOSE want the same parameters in and out, so the plan gives them one
# set. (transpose: Mamba's (B, L, D) <-> (B, D, L) moves between its int8 linears)
SHAPE_OPS = ("reshape", "slice", "concat", "transpose")


@dataclass(frozen=True)
class QParams:
    """Per-tensor integer parameters: x = scale * (q - zp), q in the range of `dtype`. The
    scale is float32, as every file stores it and every kernel reads it."""

    dtype: str  # "int8" | "int16"
    scale: float
    zp: int

    @property
    def lo(self) -> int:
        return RANGES[self.dtype][0]

    @property
    def hi(self) -> int:
        return RANGES[self.dtype][1]


# The int8 output parameters TFLite's LOGISTIC and TANH kernels prescribe
# (https://ai.google.dev/edge/litert/models/quantization_spec): the plan fixes them.
FIXED_OUTPUTS = {"sigmoid": QParams("int8", 1 / 256, -128), "tanh": QParams("int8", 1 / 128, 0)}


@dataclass(frozen=True, kw_only=True)
class TensorQuant:
    """How one tensor is stored. dtype "int8": q = clip(round(w / scale[c]), -127, 127) with c
    the index along `axis`; dtype "float32": left float, `why` says why."""

    tensor: str
    dtype: str  # "int8" | "int16" | "int32" | "float32"
    node: str = ""  # the output of the node that reads it
    axis: int | None = None
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    # "weight" (from the value); scheme "int8" adds "bias", "constant", "calibrated" and
    # "fixed" (activations: axis None, one scale; see quantize/int8.py)
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

    @property
    def params(self) -> QParams | None:
        """The per-tensor parameters (the first channel's), or None for a float tensor."""
        if self.dtype == "float32":
            return None
        return QParams(self.dtype, float(np.float32(self.scale[0])), int(self.zero_point[0]))

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
class Ranges:
    """tensor name -> (lo, hi) over every step of every calibration sequence."""

    ranges: Mapping[str, tuple[float, float]]
    sequences: int
    steps: int
    method: str  # "minmax" | "percentile 99.9" ...

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "sequences": self.sequences,
            "steps": self.steps,
            "ranges": {k: [lo, hi] for k, (lo, hi) in sorted(self.ranges.items())},
        }

    @classmethod
    def from_json(cls, d: Any) -> Ranges:
        try:
            ranges = {str(k): (float(lo), float(hi)) for k, (lo, hi) in d["ranges"].items()}
            return cls(
                ranges=ranges, sequences=int(d["sequences"]), steps=int(d["steps"]),
                method=str(d["method"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BundleError(f"quant.json: bad calibration record ({e!r})") from e


@dataclass(frozen=True, kw_only=True)
class QuantPlan:
    scheme: str  # "int8-dynamic" | "int8"
    tensors: tuple[TensorQuant, ...]
    # what export measured, for `rnnedge inspect`: the calibration the plan came from, and
    # how far the golden sequences run beyond the calibrated range (fraction of its width)
    calibration: Ranges | None = None
    golden_beyond_calibration: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise BundleError(f"quant.json: scheme {self.scheme!r} is not one of {SCHEMES}")

    # --- indexed lookups (built once per plan: kernels and emitters ask per tensor) ------

    def weight(self, node_output: str) -> TensorQuant | None:
        """The int8 weight of the node producing `node_output`, or None if it runs float."""
        return self._index[0].get(node_output)

    def activation(self, tensor: str) -> TensorQuant | None:
        """Scheme "int8": the entry of activation or constant `tensor` (not a weight or
        bias), or None if the plan does not list it."""
        return self._index[1].get(tensor)

    def params(self, tensor: str) -> QParams | None:
        """Scheme "int8": the parameters integer kernels read `tensor` with; None when it
        stays float or is not listed (`activation` tells the two apart)."""
        t = self.activation(tensor)
        return None if t is None else t.params

    def bias(self, tensor: str) -> TensorQuant | None:
        """Scheme "int8": the int32 entry of bias constant `tensor`, or None."""
        return self._index[2].get(tensor)

    @functools.cached_property
    def _index(self) -> tuple[dict[str, TensorQuant], ...]:
        # the first entry wins, as a constant read by two ops is listed once per reader
        weights: dict[str, TensorQuant] = {}  # node output -> its int8 weight
        others: dict[str, TensorQuant] = {}  # activations and other constants
        biases: dict[str, TensorQuant] = {}
        for t in self.tensors:
            if t.dtype == "int8":
                weights.setdefault(t.node, t)
            if t.source == "bias":
                biases.setdefault(t.tensor, t)
            elif t.source != "weight":
                others.setdefault(t.tensor, t)
        return weights, others, biases

    @property
    def quantized(self) -> tuple[TensorQuant, ...]:
        return tuple(t for t in self.tensors if t.dtype == "int8")

    @property
    def left_float(self) -> tuple[TensorQuant, ...]:
        return tuple(t for t in self.tensors if t.dtype == "float32")

    # --- quant.json --------------------------------------------------------------------

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "format": QUANT_FORMAT,
            "version": QUANT_VERSION,
            "scheme": self.scheme,
            "tensors": [t.to_json() for t in self.tensors],
        }
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_json()
        if self.golden_beyond_calibration:
            d["golden_beyond_calibration"] = dict(self.golden_beyond_calibration)
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
        calib = d.get("calibration")
        beyond = d.get("golden_beyond_calibration", {})
        if not isinstance(beyond, dict):
            raise BundleError("quant.json: field 'golden_beyond_calibration' must be an object")
        return cls(
            scheme=str(d.get("scheme")),
            tensors=tuple(map(TensorQuant.from_json, tensors)),
            calibration=None if calib is None else Ranges.from_json(calib),
            golden_beyond_calibration={str(k): _number(v) for k, v in beyond.items()},
        )


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError) as e:
        raise BundleError(f"quant.json: golden_beyond_calibration holds {v!r}") from e


def quantize_weight(w: np.ndarray, scale: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """int8 weights [N, K] from float w [N, K] and per-output-channel scales [N] (axis 0):
    round half to even, as ONNX QuantizeLinear, then clipped to the symmetric range."""
    s = np.asarray(scale, np.float32)[:, None]
    return np.clip(np.rint(np.asarray(w, np.float32) / s), -QMAX, QMAX).astype(np.int8)


def weight_only_matrix(w: np.ndarray, scale: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """What weight-only int8 computes with (quantize/weight_only.py): w_q * s[n], float32 [N, K],
    exact (an 8-bit integer times a scale with an 11-bit mantissa)."""
    s = np.asarray(scale, np.float32)[:, None]
    return quantize_weight(w, scale).astype(np.float32) * s


def quantize_bias(b: np.ndarray, scale: tuple[float, ...]) -> np.ndarray:
    """The int32 bias [N] (held in int64) for float b [N] at the scales of its "bias" entry:
    b[n] / scale[n] in float64, rounded half away from zero (TFLite's), clamped to int32."""
    q = round_away(np.asarray(b, np.float64) / np.asarray(scale, np.float64))
    return np.clip(q, *RANGES["int32"]).astype(np.int64)


def read_plan(files: dict[str, bytes], where: str) -> QuantPlan:
    if "quant.json" not in files:
        raise BundleError(f"{where}: has no quant.json (the bundle was exported without int8)")
    return QuantPlan.from_json(files["quant.json"])
