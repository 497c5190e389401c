"""ATEN_TO_GRAPH: the one registry from core-ATen ops to Graph ops.

Each entry is a small function `(ctx, node, *args, **kwargs) -> value` where tensor arguments
are `Sym` (computed at run time) and everything that depends on no model input has already
been folded to a torch.Tensor constant by capture. An op missing here is refused by capture
with its name and the module path it came from. The recurrent entries (GRU/LSTM/RNN layers
and cells) are defined in rnn.py, beside the gate orders they depend on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rnnedge.errors import UnsupportedModelError
from rnnedge.export.capture import conv_time
from rnnedge.export.capture.builder import Sym
from rnnedge.export.capture.context import Ctx, const, sym
from rnnedge.export.capture.rnn import RECURRENT_ATEN
from rnnedge.export.capture.writes import WRITE_ATEN


def _axis(ctx: Ctx, v: Sym, dim: int) -> int:
    rank = len(ctx.b.shape(v))
    return dim + rank if dim < 0 else dim


# --- elementwise -------------------------------------------------------------------------


def _binary(op: str, swap: bool = False) -> Callable[..., Sym]:
    def lower(ctx: Ctx, node, a, b, alpha=1) -> Sym:
        if alpha != 1:
            b = ctx.b.op("mul", [sym(ctx, b), sym(ctx, alpha)])
        x, y = (sym(ctx, b), sym(ctx, a)) if swap else (sym(ctx, a), sym(ctx, b))
        return ctx.b.op(op, [x, y])

    return lower


def _unary(op: str) -> Callable[..., Sym]:
    return lambda ctx, node, x: ctx.b.op(op, [sym(ctx, x)])


def _log1p(ctx: Ctx, node, x) -> Sym:
    # log(1 + x), as the softplus lowering spells it: for x = exp(-|v|) in (0, 1] (what
    # logsigmoid decomposes to) it differs from log1p by x's float32 rounding, < 6e-8 absolute
    one = ctx.b.const(np.ones((), np.float32), "one")
    return ctx.b.op("log", [ctx.b.op("add", [sym(ctx, x), one])])


def _clamp(ctx: Ctx, node, x, lo=None, hi=None) -> Sym:
    y = sym(ctx, x)
    if lo is not None:
        y = ctx.b.op("maximum", [y, sym(ctx, lo)])
    if hi is not None:
        y = ctx.b.op("minimum", [y, sym(ctx, hi)])
    return y


def _softmax(op: str) -> Callable[..., Sym]:
    def lower(ctx: Ctx, node, x, dim, _half_to_float=False) -> Sym:
        x = sym(ctx, x)
        return ctx.b.op(op, [x], axis=_axis(ctx, x, dim))

    return lower


def _softplus(ctx: Ctx, node, x, beta=1.0, threshold=20.0) -> Sym:
    return ctx.b.op("softplus", [sym(ctx, x)], beta=float(beta), threshold=float(threshold))


def _gelu(ctx: Ctx, node, x, approximate="none") -> Sym:
    return ctx.b.op("gelu", [sym(ctx, x)], approximate=approximate)


# --- linear, conv, norm ------------------------------------------------------------------


def _linear(ctx: Ctx, node, x, w, bias=None) -> Sym:
    ins = [sym(ctx, x), ctx.b.const(const(ctx, w, "a Linear weight"), "linear.w")]
    if bias is not None:
        ins.append(ctx.b.const(const(ctx, bias, "a Linear bias"), "linear.b"))
    return ctx.b.op("linear", ins)


def _addmm(ctx: Ctx, node, bias, x, w_t, beta=1, alpha=1) -> Sym:
    # addmm(b, x, W^T) is how the decomposition writes x W^T + b; W^T must be a parameter
    w = const(ctx, w_t, "the weight of a matrix product").T * alpha
    ins = [sym(ctx, x), ctx.b.const(w, "linear.w"), sym(ctx, const(ctx, bias, "bias") * beta)]
    return ctx.b.op("linear", ins)


def _mm(ctx: Ctx, node, x, w_t) -> Sym:
    if isinstance(w_t, Sym):  # both operands computed (an einsum of two activations)
        return ctx.b.op("matmul", [sym(ctx, x), w_t])
    w = const(ctx, w_t, "the right operand of a matrix product").T
    return ctx.b.op("linear", [sym(ctx, x), ctx.b.const(w, "linear.w")])


def _bmm(ctx: Ctx, node, a, b) -> Sym:
    # einsum lowers to bmm over [B, M, K] x [B, K, N]. A constant right operand shared by the
    # whole batch (B = 1, the einsum of an activation with a weight) is a `linear`, which int8
    # plans quantize; anything else is a `matmul`
    if not isinstance(b, Sym) and isinstance(a, Sym) and b.shape[0] == 1:
        w = const(ctx, b, "the right operand of a matrix product")[0].T
        return ctx.b.op("linear", [a, ctx.b.const(w, "linear.w")])
    return ctx.b.op("matmul", [sym(ctx, a), sym(ctx, b)])


def _embedding(ctx: Ctx, node, weight, ids, *_args) -> Sym:
    # nn.Embedding: rows of a constant table picked by integer ids (padding_idx only matters
    # to training)
    table = ctx.b.const(const(ctx, weight, "an Embedding table"), "embedding.table")
    if not isinstance(ids, Sym) or ctx.b.dtype(ids) == "float32":
        raise UnsupportedModelError(
            f"{ctx.where or 'model'}: an Embedding must read the integer step input itself "
            "(int32 or int64 ids), not a tensor computed from it"
        )
    return ctx.b.op("gather", [table, ids])


def _conv(ctx: Ctx, node, x, w, bias, stride, padding, dilation, transposed, _out_pad, groups):
    x = sym(ctx, x)
    what = "a Conv1d" if len(ctx.b.shape(x)) == 3 else "a Conv2d"
    w = const(ctx, w, f"{what} weight")
    b = None if bias is None else const(ctx, bias, f"{what} bias")
    tc = None if transposed else conv_time.plan(node)
    if tc is not None:  # over time: streamed with its own buffer
        return conv_time.lower(ctx, tc, x, w, b, (stride, padding, dilation, groups))
    if transposed or len(ctx.b.shape(x)) != 3 or len(stride) != 1:
        raise UnsupportedModelError(
            f"{ctx.where or 'model'}: only Conv1d (over time, or over a chunk within one step) "
            "and Conv2d with one axis over time are supported, not transposed convolutions"
        )
    ins = [x, ctx.b.const(w, "conv.w")]
    if b is not None:
        ins.append(ctx.b.const(b, "conv.b"))
    attrs = dict(stride=stride[0], padding=padding[0], dilation=dilation[0], groups=groups)
    return ctx.b.op("conv1d", ins, **attrs)


def _layer_norm(ctx: Ctx, node, x, normalized_shape, w=None, bias=None, eps=1e-5):
    ins = [sym(ctx, x)]
    if w is not None or bias is not None:
        dim = list(normalized_shape)
        ins.append(ctx.b.const(np.ones(dim) if w is None else const(ctx, w, "a LayerNorm weight")))
        if bias is not None:
            ins.append(ctx.b.const(const(ctx, bias, "a LayerNorm bias")))
    y = ctx.b.op("layer_norm", ins, axes=len(normalized_shape), eps=float(eps))
    return (y, None, None)  # native_layer_norm also returns mean and rstd, never used at inference


# --- reductions and shapes ---------------------------------------------------------------


def _reduce(op: str) -> Callable[..., Sym]:
    def lower(ctx: Ctx, node, x, dims=None, keepdim=False, dtype=None) -> Sym:
        x = sym(ctx, x)
        axes = dims if dims else range(len(ctx.b.shape(x)))
        return ctx.b.op(
            op, [x], axes=sorted(_axis(ctx, x, d) for d in axes), keepdims=bool(keepdim)
        )

    return lower


def _var(ctx: Ctx, node, x, dims=None, *, correction=None, keepdim=False) -> Sym:
    # torch.var: mean((x - mean(x))^2) * n / (n - correction), from existing Graph ops
    x = sym(ctx, x)
    shape = ctx.b.shape(x)
    axes = sorted(_axis(ctx, x, d) for d in (dims if dims else range(len(shape))))
    mu = ctx.b.op("mean", [x], axes=axes, keepdims=True)
    d = ctx.b.op("sub", [x, mu])
    v = ctx.b.op("mean", [ctx.b.op("mul", [d, d])], axes=axes, keepdims=bool(keepdim))
    n = int(np.prod([shape[a] for a in axes]))
    c = 1.0 if correction is None else float(correction)
    if c == 0:
        return v
    return ctx.b.op("mul", [v, ctx.b.const(np.float32(n / max(n - c, 1e-30)), "var.scale")])


def _reshape(ctx: Ctx, node, x, *_shape_args) -> Sym:
    return ctx.b.op("reshape", [sym(ctx, x)], shape=list(ctx.out_shape))


def _identity(ctx: Ctx, node, x, *_args, **_kwargs) -> Sym:
    return sym(ctx, x)


def _to_copy(ctx: Ctx, node, x, dtype=None, **_kwargs) -> Sym:
    # x.float() / x.to(torch.float32) on float32 is a copy, and so is ids.long() on integer
    # ids (gather takes int32 and int64 alike); every other cast changes the values' type
    x = sym(ctx, x)
    src = ctx.b.dtype(x)
    want = src if dtype is None else str(dtype).removeprefix("torch.")
    if want == src or (src != "float32" and want in ("int32", "int64")):
        return x
    name = {"int64": ".long()", "int32": ".int()", "float16": ".half()", "float64": ".double()"}
    how = name.get(want, f".to(torch.{want})")
    raise UnsupportedModelError(
        f"{ctx.where or 'model'}: the cast {how} of {'an' if src[0] == 'i' else 'a'} {src} "
        f"tensor to {want} is not supported "
        "(tensors computed from the input stay float32; integer ids may only feed an Embedding)"
    )


def _assert_metadata(ctx: Ctx, node, *_args, **_kwargs) -> None:
    # torch.export's record that a no-op .to()/.float() saw the dtype it expected: no value
    return None


def _permute(ctx: Ctx, node, x, dims) -> Sym:
    x = sym(ctx, x)
    return ctx.b.op("transpose", [x], perm=[_axis(ctx, x, d) for d in dims])


def _cat(ctx: Ctx, node, xs, dim=0) -> Sym:
    parts = [sym(ctx, v) for v in xs]
    return ctx.b.op("concat", parts, axis=_axis(ctx, parts[0], dim))


def _slice(ctx: Ctx, node, x, dim=0, start=None, end=None, step=1) -> Sym:
    x = sym(ctx, x)
    if x.name in ctx.b.trimmed:  # `conv(x)[..., :-p]` of a streamed conv (conv_time.plan)
        return x
    axis = _axis(ctx, x, dim)
    start, end, _ = slice(start, end, step).indices(ctx.b.shape(x)[axis])
    return ctx.b.op("slice", [x], axis=axis, start=start, end=max(end, start), step=step)


def _select(ctx: Ctx, node, x, dim, index) -> Sym:
    x = sym(ctx, x)
    axis = _axis(ctx, x, dim)
    i = index + ctx.b.shape(x)[axis] if index < 0 else index
    one = ctx.b.op("slice", [x], axis=axis, start=i, end=i + 1, step=1)
    return ctx.b.op("reshape", [one], shape=list(ctx.out_shape))


def _split_with_sizes(ctx: Ctx, node, x, sizes, dim=0) -> tuple[Sym, ...]:
    x = sym(ctx, x)
    axis, start, parts = _axis(ctx, x, dim), 0, []
    for size in sizes:
        parts.append(ctx.b.op("slice", [x], axis=axis, start=start, end=start + size, step=1))
        start += size
    return tuple(parts)


def _split(ctx: Ctx, node, x, size, dim=0) -> tuple[Sym, ...]:
    n = ctx.b.shape(sym(ctx, x))[_axis(ctx, sym(ctx, x), dim)]
    return _split_with_sizes(ctx, node, x, [min(size, n - s) for s in range(0, n, size)], dim)


def _expand(ctx: Ctx, node, x, _size, **_kwargs) -> Sym:
    return ctx.b.op("expand", [sym(ctx, x)], shape=list(ctx.out_shape))


def _pad_pairs(ctx: Ctx, x: Sym, pad: list[int]) -> list[list[int]]:
    # ATen pads are (last_before, last_after, 2nd_last_before, ...); ours one pair per axis
    rank = len(ctx.b.shape(x))
    pairs = [[0, 0] for _ in range(rank)]
    for k in range(len(pad) // 2):
        pairs[rank - 1 - k] = [pad[2 * k], pad[2 * k + 1]]
    if any(p < 0 for pair in pairs for p in pair):
        raise UnsupportedModelError(
            f"{ctx.where or 'model'}: negative padding (cropping) is not supported"
        )
    return pairs


def _constant_pad(ctx: Ctx, node, x, pad, value=0.0) -> Sym:
    x = sym(ctx, x)
    return ctx.b.op("pad", [x], pads=_pad_pairs(ctx, x, pad), mode="constant", value=float(value))


def _reflect_pad(ctx: Ctx, node, x, pad) -> Sym:
    x = sym(ctx, x)
    return ctx.b.op("pad", [x], pads=_pad_pairs(ctx, x, pad), mode="reflect", value=0.0)


def _getitem(ctx: Ctx, node, seq, i) -> Any:
    return seq[i]


ATEN_TO_GRAPH: dict[str, Callable[..., Any]] = {
    "aten.add.Tensor": _binary("add"),
    "aten.add.Scalar": _binary("add"),
    "aten.sub.Tensor": _binary("sub"),
    "aten.sub.Scalar": _binary("sub"),
    "aten.rsub.Scalar": _binary("sub", swap=True),
    "aten.rsub.Tensor": _binary("sub", swap=True),
    "aten.mul.Tensor": _binary("mul"),
    "aten.mul.Scalar": _binary("mul"),
    "aten.div.Tensor": _binary("div"),
    "aten.div.Scalar": _binary("div"),
    "aten.pow.Tensor_Scalar": _binary("pow"),
    "aten.pow.Tensor_Tensor": _binary("pow"),
    "aten.maximum.default": _binary("maximum"),
    "aten.minimum.default": _binary("minimum"),
    "aten.clamp.default": _clamp,
    "aten.clamp_min.default": lambda ctx, node, x, lo: _clamp(ctx, node, x, lo, None),
    "aten.clamp_max.default": lambda ctx, node, x, hi: _clamp(ctx, node, x, None, hi),
    "aten.neg.default": _unary("neg"),
    "aten.abs.default": _unary("abs"),
    "aten.sqrt.default": _unary("sqrt"),
    "aten.rsqrt.default": _unary("rsqrt"),
    "aten.exp.default": _unary("exp"),
    "aten.log.default": _unary("log"),
    "aten.log1p.default": _log1p,
    "aten.sigmoid.default": _unary("sigmoid"),
    "aten.tanh.default": _unary("tanh"),
    "aten.relu.default": _unary("relu"),
    "aten.gelu.default": _gelu,
    "aten.softplus.default": _softplus,
    "aten._softmax.default": _softmax("softmax"),
    "aten._log_softmax.default": _softmax("log_softmax"),
    "aten.linear.default": _linear,
    "aten.addmm.default": _addmm,
    "aten.mm.default": _mm,
    "aten.bmm.default": _bmm,
    "aten.embedding.default": _embedding,
    "aten.convolution.default": _conv,
    "aten.native_layer_norm.default": _layer_norm,
    "aten.mean.dim": _reduce("mean"),
    "aten.mean.default": _reduce("mean"),
    "aten.sum.dim_IntList": _reduce("sum"),
    "aten.sum.default": _reduce("sum"),
    "aten.var.correction": _var,
    "aten.view.default": _reshape,
    "aten.reshape.default": _reshape,
    "aten._unsafe_view.default": _reshape,
    "aten.squeeze.dims": _reshape,
    "aten.squeeze.dim": _reshape,
    "aten.squeeze.default": _reshape,
    "aten.unsqueeze.default": _reshape,
    "aten.flatten.using_ints": _reshape,
    "aten.clone.default": _identity,
    "aten.alias.default": _identity,
    "aten.detach.default": _identity,
    "aten.contiguous.default": _identity,
    "aten.dropout.default": _identity,  # export runs the model in eval mode: dropout is identity
    "aten._to_copy.default": _to_copy,
    "aten._assert_tensor_metadata.default": _assert_metadata,
    "aten.permute.default": _permute,
    "aten.cat.default": _cat,
    "aten.slice.Tensor": _slice,
    "aten.select.int": _select,
    "aten.split_with_sizes.default": _split_with_sizes,
    "aten.split.Tensor": _split,
    "aten.expand.default": _expand,
    "aten.constant_pad_nd.default": _constant_pad,
    "aten.reflection_pad1d.default": _reflect_pad,
    "aten.reflection_pad2d.default": _reflect_pad,
    "getitem": _getitem,
    "aten.max_pool2d_with_indices.default": conv_time.refuse_pool,
    "aten.max_pool1d.default": conv_time.refuse_pool,
    "aten.avg_pool2d.default": conv_time.refuse_pool,
    "aten.avg_pool1d.default": conv_time.refuse_pool,
    **RECURRENT_ATEN,  # GRU/LSTM/RNN layers and cells: capture/rnn.py
    **WRITE_ATEN,  # an indexed write into a fresh tensor: capture/writes.py
}
