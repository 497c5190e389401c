"""ONNX lowering of every Graph op (runtime/ops.py defines them): op name -> small function.

Each function reads one Graph node and appends opset-17 nodes through the OnnxEmitter
(emitter.py). The model runs once per time step at batch 1, so a lowering adds as few nodes
as it can: weights are re-laid out at export time and no-op nodes become aliases.
Operator reference: https://onnx.ai/onnx/operators/ (the opset-17 version of each page).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from rnnedge.errors import ExportError
from rnnedge.runtime.graph import Node

if TYPE_CHECKING:
    from rnnedge.export.onnx.emitter import OnnxEmitter

Lowering = Callable[["OnnxEmitter", Node], None]


def where(node: Node) -> str:
    """How errors name a node: its op, its output tensor and, if known, the user's module."""
    out = node.outputs[0] if node.outputs else "?"
    at = f" from {node.source}" if node.source else ""
    return f"cannot export op {node.op!r} (node producing {out!r}{at}) to ONNX"


def unsupported(node: Node, why: str) -> ExportError:
    return ExportError(f"{where(node)}: {why}")


def _one(op_type: str) -> Lowering:
    """Ops that are exactly one ONNX node; binary ones broadcast as numpy does."""

    def lower(em: OnnxEmitter, node: Node) -> None:
        em.add(op_type, list(node.inputs), node.outputs[0])

    return lower


def _rsqrt(em: OnnxEmitter, node: Node) -> None:
    em.add("Reciprocal", [em.add("Sqrt", [node.inputs[0]])], node.outputs[0])


def _gelu(em: OnnxEmitter, node: Node) -> None:
    # opset 17 has no Gelu (it arrives in 20). Both forms are the exact subgraphs onnxruntime's
    # GeluFusion / FastGeluFusion rewrite into one kernel.
    x, approximate = node.inputs[0], node.attrs["approximate"]
    if approximate == "none":  # x/2 (1 + erf(x / sqrt 2))
        act = em.add("Erf", [em.add("Div", [x, em.f32(math.sqrt(2))])])
    elif approximate == "tanh":  # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = em.add("Mul", [em.add("Pow", [x, em.f32(3.0)]), em.f32(0.044715)])
        inner = em.add("Mul", [em.add("Add", [x, cube]), em.f32(math.sqrt(2 / math.pi))])
        act = em.add("Tanh", [inner])
    else:
        raise unsupported(node, f"approximate={approximate!r}, want 'none' or 'tanh'")
    half = em.add("Mul", [x, em.f32(0.5)])
    em.add("Mul", [half, em.add("Add", [act, em.f32(1.0)])], node.outputs[0])


def _softmax(op_type: str) -> Lowering:
    # Softmax / LogSoftmax (opset 13+): along the one axis `axis`, computed stably by the kernel
    def lower(em: OnnxEmitter, node: Node) -> None:
        em.add(op_type, [node.inputs[0]], node.outputs[0], axis=int(node.attrs["axis"]))

    return lower


def _softplus(em: OnnxEmitter, node: Node) -> None:
    # The stable form max(bx, 0) + log(1 + exp(-|bx|)), over b, and x where bx > threshold
    # (ops.softplus). ONNX Softplus is ln(exp(x) + 1) with no beta, threshold or overflow
    # guarantee, so it is spelled out; opset 17 has no Log1p, and log(1 + e) for e <= 1 is off
    # from log1p(e) by at most e's float32 rounding (< 6e-8 absolute)
    x, out = node.inputs[0], node.outputs[0]
    beta, threshold = float(node.attrs["beta"]), float(node.attrs["threshold"])
    bx = x if beta == 1.0 else em.add("Mul", [x, em.f32(beta)])
    tail = em.add("Exp", [em.add("Neg", [em.add("Abs", [bx])])])
    log = em.add("Log", [em.add("Add", [tail, em.f32(1.0)])])
    soft = em.add("Add", [em.add("Relu", [bx]), log])
    if beta != 1.0:
        soft = em.add("Div", [soft, em.f32(beta)])
    linear = em.add("Greater", [bx, em.f32(threshold)])
    em.add("Where", [linear, x, soft], out)


def _gather(em: OnnxEmitter, node: Node) -> None:
    # Gather (axis 0): rows of the table by int32/int64 indices, as ops.gather
    em.add("Gather", list(node.inputs), node.outputs[0], axis=0)


def _linear(em: OnnxEmitter, node: Node) -> None:
    # y = x w^T + b with w [N, K] (nn.Linear layout)
    x, w, *bias = node.inputs
    out = node.outputs[0]
    xs, ws = em.shape(x), em.shape(w)
    if len(ws) != 2:
        raise unsupported(node, f"weight {w!r} has shape {list(ws)}, want [N, K]")
    if len(xs) == 2 and em.shape(out) == (xs[0], ws[0]):
        # Gemm: Y = A B^T + C, C unidirectionally broadcast to [M, N]
        em.add("Gemm", [x, w, *bias], out, transB=1)
        return
    # MatMul (numpy matmul semantics for rank != 2): transpose a constant weight once, here
    value = em.const(w)
    if value is None:
        wt = em.add("Transpose", [w], perm=[1, 0])
    else:
        wt = em.derived(("T", em.resolve(w)), f"{em.resolve(w)}.T", lambda: value.T)
    y = em.add("MatMul", [x, wt], None if bias else out)
    if bias:
        em.add("Add", [y, bias[0]], out)


def _conv1d(em: OnnxEmitter, node: Node) -> None:
    # Conv over [N, C, L] with symmetric zero padding, as nn.Conv1d
    x, w, *bias = node.inputs
    ws, a = em.shape(w), node.attrs
    if len(em.shape(x)) != 3 or len(ws) != 3:
        raise unsupported(node, "conv1d wants x [N, C, L] and w [O, C/groups, K]")
    if bias and em.shape(bias[0]) != (ws[0],):
        raise unsupported(node, f"bias {bias[0]!r} must have shape [{ws[0]}]")
    p = int(a["padding"])
    em.add(
        "Conv",
        list(node.inputs),
        node.outputs[0],
        kernel_shape=[ws[2]],
        pads=[p, p],
        strides=[int(a["stride"])],
        dilations=[int(a["dilation"])],
        group=int(a["groups"]),
    )


def _layer_norm(em: OnnxEmitter, node: Node) -> None:
    # LayerNormalization normalises dims [axis, rank); Scale is required, B optional. A weight
    # or bias whose shape it cannot take is applied afterwards, as numpy broadcasting does.
    x, w, b = (*node.inputs, None, None)[:3]
    k, xs, out = int(node.attrs["axes"]), em.shape(x), node.outputs[0]
    if not 1 <= k <= len(xs):
        raise unsupported(node, f"axes={k} must be in 1..{len(xs)} for input {list(xs)}")
    norm = xs[len(xs) - k :]
    scale = _ln_param(em, w, norm, len(xs)) if w else None
    fold_w = w is None or scale is not None
    bias = _ln_param(em, b, norm, len(xs)) if b and fold_w else None
    fold_b = b is None or bias is not None
    if scale is None:
        scale = em.derived(("ones", norm), "ones", lambda: np.ones(norm, np.float32))
    ins = [x, scale, *([bias] if bias else [])]
    eps = float(node.attrs["eps"])
    y = em.add("LayerNormalization", ins, out if fold_w and fold_b else None, axis=-k, epsilon=eps)
    if not fold_w:
        y = em.add("Mul", [y, w], out if b is None else None)
    if not fold_b:
        em.add("Add", [y, b], out)


def _ln_param(em: OnnxEmitter, t: str, norm: tuple[int, ...], rank: int) -> str | None:
    """`t` as a LayerNormalization Scale/B of shape `norm`, or None if it must stay a Mul/Add."""
    st = em.shape(t)
    if st == norm:
        return t
    value = em.const(t)
    padded = (1,) * (rank - len(st)) + st
    lead, tail = padded[: rank - len(norm)], padded[rank - len(norm) :]
    if value is None or len(st) > rank or any(d != 1 for d in lead):
        return None
    return em.derived(
        ("ln", em.resolve(t), norm),
        f"{em.resolve(t)}.ln",
        lambda: np.broadcast_to(value.reshape(tail), norm),
    )


def _reduce(op_type: str) -> Lowering:
    def lower(em: OnnxEmitter, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        axes = [int(a) for a in node.attrs["axes"]]
        keep = int(bool(node.attrs["keepdims"]))
        if not axes:  # numpy reduces over no axis at all; ONNX would reduce over all of them
            em.alias(out, x)
        elif op_type == "ReduceSum":  # axes became an input in opset 13
            em.add(op_type, [x, em.i64(axes, f"{out}.axes")], out, keepdims=keep)
        else:  # ReduceMean keeps axes as an attribute until opset 18
            em.add(op_type, [x], out, axes=axes, keepdims=keep)

    return lower


def _reshape(em: OnnxEmitter, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    shape = [int(d) for d in node.attrs["shape"]]
    if tuple(shape) == em.shape(x):
        em.alias(out, x)
        return
    zero = {"allowzero": 1} if 0 in shape else {}  # else a 0 means "keep the input's dim"
    em.add("Reshape", [x, em.i64(shape, f"{out}.shape")], out, **zero)


def _transpose(em: OnnxEmitter, node: Node) -> None:
    perm = [int(p) for p in node.attrs["perm"]]
    if perm == list(range(len(perm))):
        em.alias(node.outputs[0], node.inputs[0])
        return
    em.add("Transpose", [node.inputs[0]], node.outputs[0], perm=perm)


def _concat(em: OnnxEmitter, node: Node) -> None:
    if len(node.inputs) == 1:
        em.alias(node.outputs[0], node.inputs[0])
        return
    em.add("Concat", list(node.inputs), node.outputs[0], axis=int(node.attrs["axis"]))


def _expand(em: OnnxEmitter, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    shape = [int(d) for d in node.attrs["shape"]]
    if np.broadcast_shapes(em.shape(x), tuple(shape)) == em.shape(x):
        em.alias(out, x)
        return
    em.add("Expand", [x, em.i64(shape, f"{out}.shape")], out)


def _slice(em: OnnxEmitter, node: Node) -> None:
    x, out, a = node.inputs[0], node.outputs[0], node.attrs
    axis, start, end, step = (int(a[k]) for k in ("axis", "start", "end", "step"))
    if start == 0 and end >= em.shape(x)[axis] and step == 1:
        em.alias(out, x)
        return
    ins = [x, em.i64([start], f"{out}.starts"), em.i64([end], f"{out}.ends")]
    ins.append(em.i64([axis], f"{out}.axes"))
    if step != 1:
        ins.append(em.i64([step], f"{out}.steps"))
    em.add("Slice", ins, out)


def _pad(em: OnnxEmitter, node: Node) -> None:
    x, out, mode = node.inputs[0], node.outputs[0], node.attrs["mode"]
    xs = em.shape(x)
    # one [before, after] per axis; np.pad broadcasts a single pair over all axes
    widths = np.broadcast_to(np.asarray(node.attrs["pads"], np.int64).reshape(-1, 2), (len(xs), 2))
    if (widths < 0).any():
        raise unsupported(node, f"negative pads {widths.tolist()}")
    if mode not in ("constant", "reflect"):
        raise unsupported(node, f"mode={mode!r}, want 'constant' or 'reflect'")
    if mode == "reflect" and any(w.max() >= d for w, d in zip(widths, xs, strict=True) if w.any()):
        # ONNX reflect mirrors once: every pad must be smaller than its axis
        raise unsupported(node, f"reflect pads {widths.tolist()} too wide for input {list(xs)}")
    if not widths.any():
        em.alias(out, x)
        return
    ins = [x, em.i64([*widths[:, 0], *widths[:, 1]], f"{out}.pads")]  # all befores, then afters
    value = float(node.attrs["value"])
    if mode == "constant" and value != 0.0:
        ins.append(em.f32(value))
    em.add("Pad", ins, out, mode=mode)


LOWERINGS: dict[str, Lowering] = {
    "add": _one("Add"),
    "sub": _one("Sub"),
    "mul": _one("Mul"),
    "div": _one("Div"),
    "pow": _one("Pow"),
    "maximum": _one("Max"),
    "minimum": _one("Min"),
    "neg": _one("Neg"),
    "abs": _one("Abs"),
    "sqrt": _one("Sqrt"),
    "rsqrt": _rsqrt,
    "exp": _one("Exp"),
    "log": _one("Log"),
    "sigmoid": _one("Sigmoid"),
    "tanh": _one("Tanh"),
    "relu": _one("Relu"),
    "gelu": _gelu,
    "softplus": _softplus,
    "softmax": _softmax("Softmax"),
    "log_softmax": _softmax("LogSoftmax"),
    "linear": _linear,
    "matmul": _one("MatMul"),  # numpy matmul semantics, batch dims broadcast
    "gather": _gather,
    "conv1d": _conv1d,
    "layer_norm": _layer_norm,
    "mean": _reduce("ReduceMean"),
    "sum": _reduce("ReduceSum"),
    "reshape": _reshape,
    "transpose": _transpose,
    "concat": _concat,
    "expand": _expand,
    "slice": _slice,
    "pad": _pad,
}
