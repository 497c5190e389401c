"""The op set of the Graph, defined by numpy code: this file is the executable specification.

Every op takes float32 arrays and returns ONE float32 array; the one exception is the index
operand of `gather` (int32 or int64, an embedding's token ids). Shapes follow numpy broadcasting
where an op is elementwise. PyTorch checks these functions (tests/spec/test_ops.py) and these
functions check every other backend. docs/ops.md lists the ops and the ATen ops that map to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class OpDef:
    fn: Callable[..., np.ndarray]
    min_inputs: int
    max_inputs: int
    attrs: tuple[str, ...] = ()  # attributes every node of this op must carry


# --- elementwise -------------------------------------------------------------------------


def _binary(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> OpDef:
    return OpDef(lambda a, b: f(a, b).astype(F32, copy=False), 2, 2)


def _unary(f: Callable[[np.ndarray], np.ndarray]) -> OpDef:
    return OpDef(lambda x: f(x).astype(F32, copy=False), 1, 1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-x), computed without overflow warnings for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf. Abramowitz & Stegun 7.1.26 in float64: |error| <= 1.5e-7, which is
    # about one float32 ulp near 1 and far below our 1e-5 parity budget.
    x64 = x.astype(np.float64)
    t = 1 / (1 + 0.3275911 * np.abs(x64))
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return np.sign(x64) * (1 - poly * np.exp(-x64 * x64))


def gelu(x: np.ndarray, *, approximate: str) -> np.ndarray:
    # "none": x/2 (1 + erf(x/sqrt 2)); "tanh": x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return (0.5 * x * (1 + np.tanh(inner))).astype(F32)
    return (0.5 * x * (1 + erf(x / math.sqrt(2)))).astype(F32)


def softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    # exp(x - max) / sum exp(x - max) along `axis`: subtracting the max keeps exp <= 1, so no
    # input overflows (the naive exp(x) is inf from x = 89)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(F32, copy=False)


def log_softmax(x: np.ndarray, *, axis: int) -> np.ndarray:
    # (x - max) - log sum exp(x - max): never log(0), never exp overflow
    s = x - x.max(axis=axis, keepdims=True)
    return (s - np.log(np.exp(s).sum(axis=axis, keepdims=True))).astype(F32, copy=False)


def softplus(x: np.ndarray, *, beta: float, threshold: float) -> np.ndarray:
    # PyTorch's softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold.
    # Written max(bx, 0) + log1p(exp(-|bx|)): exp never overflows (the naive form is inf, and
    # so wrong, from bx = 89 whatever the threshold)
    bx = x * F32(beta)
    soft = (np.maximum(bx, F32(0)) + np.log1p(np.exp(-np.abs(bx)))) / F32(beta)
    return np.where(bx > F32(threshold), x, soft).astype(F32, copy=False)


# --- matmul and conv ---------------------------------------------------------------------


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    # x [..., K], w [N, K], b [N] -> [..., N]; y = x w^T + b (PyTorch nn.Linear layout)
    y = x @ w.T
    return y if b is None else y + b


def gather(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    # table [V, ...], ids integer [...] -> [..., ...]: rows of the table (nn.Embedding, ONNX
    # Gather axis 0, TFLite GATHER). An id outside [0, V) is an error, as in PyTorch (numpy
    # would wrap a negative one)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"gather indices must be integers, got {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= table.shape[0]):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"index {bad} is out of range for a table of {table.shape[0]} rows")
    return table[ids]


def conv1d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: int,
    padding: int,
    dilation: int,
    groups: int,
) -> np.ndarray:
    # x [N, C, L], w [O, C/groups, K], b [O] -> [N, O, L'] with zero padding on both sides,
    # L' = (L + 2 padding - dilation (K - 1) - 1) // stride + 1  (PyTorch nn.Conv1d)
    n = x.shape[0]
    o, cg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    span = dilation * (k - 1) + 1
    out_len = (xp.shape[2] - span) // stride + 1
    taps = np.arange(k) * dilation
    starts = np.arange(out_len) * stride
    cols = xp[:, :, starts[:, None] + taps[None, :]]  # [N, C, L', K]
    cols = cols.reshape(n, groups, cg, out_len, k)
    wg = w.reshape(groups, o // groups, cg, k)
    y = np.einsum("ngclk,gock->ngol", cols, wg).reshape(n, o, out_len)
    return y if b is None else y + b[None, :, None]


def layer_norm(
    x: np.ndarray,
    w: np.ndarray | None = None,
    b: np.ndarray | None = None,
    *,
    axes: int,
    eps: float,
) -> np.ndarray:
    # normalise over the last `axes` dims: (x - mean) / sqrt(var + eps) * w + b, biased var
    if not 1 <= axes <= x.ndim:
        raise ValueError(f"layer_norm axes must be in 1..{x.ndim}, got {axes}")
    dims = tuple(range(x.ndim - axes, x.ndim))
    mean = x.mean(axis=dims, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=dims, keepdims=True)
    y = (x - mean) / np.sqrt(var + F32(eps))
    if w is not None:
        y = y * w
    return y if b is None else y + b


# --- shape ops ---------------------------------------------------------------------------


def pad(x: np.ndarray, *, pads: list[list[int]], mode: str, value: float) -> np.ndarray:
    # pads: one [before, after] pair per axis; mode "constant" (fill `value`) or "reflect"
    # (mirror without repeating the edge, as PyTorch's reflect and ONNX Pad's "reflect")
    widths = [tuple(p) for p in pads]
    if mode not in ("constant", "reflect"):
        raise ValueError(f"pad mode must be 'constant' or 'reflect', got {mode!r}")
    if mode == "reflect":
        # numpy would mirror repeatedly; PyTorch, ONNX and TFLite require pad < dim
        if any(max(p) >= d for p, d in zip(widths, x.shape)):
            raise ValueError(f"reflect pads {pads} must be smaller than the dims {list(x.shape)}")
        return np.pad(x, widths, mode="reflect")
    return np.pad(x, widths, mode="constant", constant_values=F32(value))


def slice_(x: np.ndarray, *, axis: int, start: int, end: int, step: int) -> np.ndarray:
    # x[..., start:end:step, ...] along `axis`; bounds already clamped to [0, dim], step >= 1
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, end, step)
    return x[tuple(index)]


def _reduce(f: Callable[..., np.ndarray]) -> OpDef:
    # reduce over `axes` (non-negative), keeping them as size 1 when keepdims
    def op(x: np.ndarray, *, axes: list[int], keepdims: bool) -> np.ndarray:
        return f(x, axis=tuple(axes), keepdims=keepdims).astype(F32, copy=False)

    return OpDef(op, 1, 1, ("axes", "keepdims"))


OPS: dict[str, OpDef] = {
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(np.divide),
    "pow": _binary(np.power),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "neg": _unary(np.negative),
    "abs": _unary(np.abs),
    "sqrt": _unary(np.sqrt),
    "rsqrt": _unary(lambda x: 1 / np.sqrt(x)),
    "exp": _unary(np.exp),
    "log": _unary(np.log),
    "sigmoid": _unary(sigmoid),
    "tanh": _unary(np.tanh),
    "relu": _unary(lambda x: np.maximum(x, F32(0))),
    "gelu": OpDef(gelu, 1, 1, ("approximate",)),
    "softplus": OpDef(softplus, 1, 1, ("beta", "threshold")),
    "softmax": OpDef(softmax, 1, 1, ("axis",)),
    "log_softmax": OpDef(log_softmax, 1, 1, ("axis",)),
    "linear": OpDef(lambda *a: linear(*a).astype(F32, copy=False), 2, 3),
    # a @ b with numpy's matmul rules (batch dims broadcast): both operands may be computed
    "matmul": OpDef(lambda a, b: np.matmul(a, b).astype(F32, copy=False), 2, 2),
    "gather": OpDef(gather, 2, 2),
    "conv1d": OpDef(conv1d, 2, 3, ("stride", "padding", "dilation", "groups")),
    "layer_norm": OpDef(layer_norm, 1, 3, ("axes", "eps")),
    "mean": _reduce(np.mean),
    "sum": _reduce(np.sum),
    # x reshaped to attrs.shape (fully static, same element count)
    "reshape": OpDef(lambda x, *, shape: x.reshape(shape), 1, 1, ("shape",)),
    # axes permuted: y.shape[i] = x.shape[perm[i]]
    "transpose": OpDef(lambda x, *, perm: np.ascontiguousarray(x.transpose(perm)), 1, 1, ("perm",)),
    # inputs joined along `axis` (non-negative)
    "concat": OpDef(lambda *xs, axis: np.concatenate(xs, axis=axis), 1, 64, ("axis",)),
    # x broadcast against attrs.shape, both ways (numpy rules; ONNX Expand): a 1 in shape
    # keeps x's dim, which is how a batched graph leaves its batch axis free
    "expand": OpDef(
        lambda x, *, shape: np.ascontiguousarray(
            np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape)))
        ),
        1,
        1,
        ("shape",),
    ),
    "slice": OpDef(slice_, 1, 1, ("axis", "start", "end", "step")),
    "pad": OpDef(pad, 1, 1, ("pads", "mode", "value")),
}
