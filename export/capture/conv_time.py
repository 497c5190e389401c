"""Convolutions over time, streamed with their own state (a shift register).

At one step a convolution over the time axis sees one frame plus its padding. A CAUSAL one
(left pad (k-1) * dilation, stride 1 along time) computes at step t exactly what it computes
over the whole sequence if it also sees the (k-1) * dilation frames before t. Those frames
become an explicit state `<module path>.buffer` (its initial value: what the padding would
have given, zeros or the pad value), and one step is

    window = concat(buffer, frame)                 along time, (k-1) * dilation + 1 frames
    y      = conv(window), no padding along time   one output frame
    buffer = window[1:]                            the shift

from existing Graph ops (concat, slice, conv1d; a Conv2d with one axis over time is a conv1d
over the other axis with the time taps folded into the channels), so every backend, int8 (the
buffer, the frame and the window are one quantization group, as any concat and slice) and
the native C get it with nothing new. The ways users write causal padding all reach this:
F.pad / nn.ConstantPad1d / nn.ZeroPad2d before the conv (an `aten.constant_pad_nd` feeding
it), or a padded conv whose extra right frames are sliced off (`conv(x)[..., :-p]`): see
`plan`. Anything else over time (right context, stride, pooling) is refused naming the module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import fx

from rnnedge.errors import UnsupportedModelError
from rnnedge.export.capture.builder import Sym
from rnnedge.export.capture.context import Ctx, innermost_module

A = torch.ops.aten


@dataclass(frozen=True)
class TimeConv:
    """How one convolution node over time streams (all sizes along the time axis)."""

    axis: int  # the time axis of the conv's input and output (2 for Conv1d; 2 or 3 for Conv2d)
    span: int  # (k - 1) * dilation + 1: the window; the buffer holds span - 1 frames
    frame: int  # where the current frame sits in the conv's input (after the user's left pad)
    out_index: int  # where the current step's output sits in the conv's output at one step
    out_len: int  # the conv's output length at one step (> 1 when the user slices it after)
    init: tuple[float, ...]  # the buffer's initial value per frame, oldest first

    @property
    def buffered(self) -> bool:
        return self.span > 1


def module_name(node: fx.Node) -> str:
    """`Conv1d 'frontend.conv'`, as the messages name a module."""
    module = innermost_module(node)
    if module is None:
        return "a convolution at the top level"
    path, cls_name = module
    return f"{cls_name} '{path}'"


def _shape(n) -> tuple[int, ...]:
    return tuple(n.meta["val"].shape)


def _user_pad(xn: fx.Node) -> tuple[fx.Node, list[int], float]:
    """The conv input before a constant pad feeding it, the ATen pad list and its value."""
    if isinstance(xn, fx.Node) and xn.target == A.constant_pad_nd.default:
        value = xn.args[2] if len(xn.args) > 2 else xn.kwargs.get("value", 0.0)
        return xn.args[0], list(xn.args[1]), float(value)
    return xn, [], 0.0


def _pad_on(pads: list[int], rank: int, axis: int) -> tuple[int, int]:
    k = rank - 1 - axis  # ATen pads run from the last axis backwards, (before, after) each
    return (pads[2 * k], pads[2 * k + 1]) if 2 * k + 1 < len(pads) else (0, 0)


def _time_axis(raw: tuple[int, ...], spans: list[int], pads: list[int]) -> int | None:
    """The spatial axis that is time: of size 1 at one step (before padding), preferring one
    that the kernel or the padding reaches beyond; None when no spatial axis has size 1."""
    ones = [i for i in range(2, len(raw)) if raw[i] == 1]
    reaching = [i for i in ones if spans[i - 2] > 1 or pads[i - 2] > 0]
    return (reaching or ones or [None])[0]


def plan(node: fx.Node) -> TimeConv | None:
    """How `node` (an aten.convolution) streams, or None for a convolution within one step
    (no spatial axis of size 1, or a pointwise Conv1d); refuses what a stream cannot run."""
    xn, w = node.args[0], node.args[1]
    stride, padding, dilation, transposed = node.args[3], node.args[4], node.args[5], node.args[6]
    if transposed:
        return None  # refused by the lowering as before
    raw_node, pads, value = _user_pad(xn)
    raw, rank = _shape(raw_node), len(_shape(xn))
    kernel = _shape(w)[2:]
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    user = [sum(_pad_on(pads, rank, i)) for i in range(2, rank)]
    axis = _time_axis(raw, spans, [p + u for p, u in zip(padding, user)])
    if axis is None:
        return None
    s = axis - 2
    span, conv_pad = spans[s], padding[s]
    if rank == 3 and span == 1 and conv_pad == 0 and not user[s]:
        return None  # a pointwise Conv1d: nothing to remember
    name = module_name(node)
    if stride[s] != 1:
        raise UnsupportedModelError(
            f"{name} has stride {stride[s]} along time: a stream gives one output per input "
            "step, so downsampling over time is not supported (stride along features is)"
        )
    left = _pad_on(pads, rank, axis)[0]
    out_len = _shape(node)[axis]
    out_index = _trim_start(node, axis, out_len, name)
    lookahead = out_index - (left + conv_pad) + span - 1
    if lookahead != 0:
        raise UnsupportedModelError(_not_causal(name, lookahead, left + conv_pad, span))
    init = tuple(value if t < left else 0.0 for t in range(span - 2, -1, -1))
    return TimeConv(axis, span, left, out_index, out_len, init)


def _trim_start(node: fx.Node, axis: int, out_len: int, name: str) -> int:
    """Where the step's output sits among the conv's out_len frames at one step: 0 when there
    is one frame; else every user must slice one frame out of them (`y[..., :-p]`)."""
    if out_len == 1:
        return 0
    starts = set()
    for user in node.users:
        if user.target != A.slice.Tensor:
            starts.add(None)
            continue
        dim, start, end, step = (list(user.args[1:]) + [0, None, None, 1][len(user.args) - 1 :])[:4]
        dim = dim + len(_shape(node)) if dim < 0 else dim
        lo, hi, _ = slice(start, end, step).indices(out_len)
        starts.add(lo if dim == axis and step == 1 and hi - lo == 1 else None)
    if len(starts) != 1 or None in starts:
        raise UnsupportedModelError(
            f"{name} gives {out_len - 1} more output frames than input frames over time and "
            "they are not sliced off right after it (write y[..., :-p] after a conv padded by "
            "p, or pad only on the left with F.pad)"
        )
    return starts.pop()


def _not_causal(name: str, lookahead: int, left: int, span: int) -> str:
    if lookahead > 0:
        return (
            f"{name} is not causal: its output at step t reads {lookahead} frame(s) after t "
            f"(lookahead {lookahead}; kernel span {span} along time, {left} frame(s) of padding "
            f"before), and a stream cannot see the future; pad it on the left only by "
            f"{span - 1} = (kernel - 1) * dilation frames, or run the model offline"
        )
    return (
        f"{name} reads only frames before the current step (a delay of {-lookahead} "
        f"frame(s)): not supported; pad it on the left by exactly {span - 1} frames"
    )


def buffer_init(tc: TimeConv, frame_shape: tuple[int, ...]) -> np.ndarray:
    """The buffer's initial value: frame_shape with span - 1 frames along the time axis."""
    shape = list(frame_shape)
    shape[tc.axis] = tc.span - 1
    per_frame = np.asarray(tc.init, np.float32).reshape(
        [-1 if i == tc.axis else 1 for i in range(len(shape))]
    )
    return np.broadcast_to(per_frame, shape).astype(np.float32)


def torch_conv_step(
    tc: TimeConv, x: torch.Tensor, buffer: torch.Tensor | None, conv_args: tuple
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PyTorch's own streamed conv (the parity reference of the graph's): the output at one
    step in the traced shape (the step's frame at out_index, zeros elsewhere: sliced off by
    the model), and the next buffer. `x` is the conv's input as traced; `conv_args` the rest
    of aten.convolution's arguments (weight, bias, stride, padding, ...)."""
    w, b, stride, padding, dilation, transposed, out_pad, groups = conv_args
    frame = x.narrow(tc.axis, tc.frame, 1)
    window = frame if buffer is None else torch.cat([buffer, frame], dim=tc.axis)
    pad = list(padding)
    pad[tc.axis - 2] = 0
    y = A.convolution.default(window, w, b, stride, pad, dilation, transposed, out_pad, groups)
    shape = list(y.shape)
    shape[tc.axis] = tc.out_len
    out = y.new_zeros(shape)
    out.narrow(tc.axis, tc.out_index, 1).copy_(y)
    nxt = None if buffer is None else window.narrow(tc.axis, 1, tc.span - 1).clone()
    return out, nxt


def lower(
    ctx: Ctx,
    tc: TimeConv,
    x: Sym,
    w: np.ndarray,
    bias: np.ndarray | None,
    conv: tuple[list[int], list[int], list[int], int],
) -> Sym:
    """The streamed conv as Graph ops: its output frame at this step. `conv`: (stride,
    padding, dilation, groups) as aten.convolution has them."""
    frame = _frame(ctx, x, tc)
    window = frame
    if tc.buffered:
        init = buffer_init(tc, ctx.b.shape(frame))
        buf = ctx.lift(f"{ctx.where or 'conv'}.buffer", torch.from_numpy(init))
        window = ctx.b.op("concat", [buf, frame], f"{ctx.where}.window", axis=tc.axis)
        shifted = ctx.b.op("slice", [window], axis=tc.axis, start=1, end=tc.span, step=1)
        ctx.emit_state(buf, shifted)
    y = (
        _conv1d(ctx, tc, window, w, bias, conv)
        if w.ndim == 3
        else _conv2d(ctx, tc, window, w, bias, conv)
    )
    if tc.out_len > 1:
        ctx.b.trimmed.add(y.name)  # the slices the model cuts its extra frames with: no-ops
    return y


def _frame(ctx: Ctx, x: Sym, tc: TimeConv) -> Sym:
    """The current frame of the conv's input: x itself, the input of a pad that pads time
    only (the pad then dies), or the frame sliced out of the padded input."""
    if ctx.b.shape(x)[tc.axis] == 1:
        return x
    pad = ctx.b.producer(x)
    time_only = pad is not None and pad.op == "pad"
    if time_only and all(p == [0, 0] for i, p in enumerate(pad.attrs["pads"]) if i != tc.axis):
        return Sym(pad.inputs[0])
    return ctx.b.op("slice", [x], axis=tc.axis, start=tc.frame, end=tc.frame + 1, step=1)


def _weights(ctx: Ctx, w: np.ndarray, bias: np.ndarray | None) -> list[Sym]:
    ins = [ctx.b.const(w, "conv.w")]
    return ins if bias is None else [*ins, ctx.b.const(bias, "conv.b")]


def _conv1d(ctx: Ctx, tc: TimeConv, window: Sym, w, bias, conv) -> Sym:
    _stride, _padding, dilation, groups = conv
    ins = [window, *_weights(ctx, w, bias)]
    return ctx.b.op("conv1d", ins, stride=1, padding=0, dilation=dilation[0], groups=groups)


def _conv2d(ctx: Ctx, tc: TimeConv, window: Sym, w, bias, conv) -> Sym:
    """A Conv2d with one axis over time at one step: its k time taps (every dilation-th frame
    of the window) folded into the channels, (B, C, k, F) -> (B, C k, F), then a conv1d over
    the other axis with the weight (O, C/g, k, kF) -> (O, C/g k, kF): the same sums (the
    channel groups stay contiguous)."""
    stride, padding, dilation, groups = conv
    ta, fa = tc.axis, 5 - tc.axis  # time and the other spatial axis of (B, C, H, W)
    taps = window
    if w.shape[ta] > 1:
        taps = ctx.b.op("slice", [window], axis=ta, start=0, end=tc.span, step=dilation[ta - 2])
    if ta == 3:  # (B, C, F, k) -> (B, C, k, F)
        taps = ctx.b.op("transpose", [taps], perm=[0, 1, 3, 2])
        w = w.transpose(0, 1, 3, 2)
    n, c, k, f = ctx.b.shape(taps)
    flat = ctx.b.op("reshape", [taps], shape=[n, c * k, f])
    w1 = np.ascontiguousarray(w.reshape(w.shape[0], -1, w.shape[3]))
    attrs = dict(stride=stride[fa - 2], padding=padding[fa - 2], dilation=dilation[fa - 2])
    y = ctx.b.op("conv1d", [flat, *_weights(ctx, w1, bias)], groups=groups, **attrs)
    n, o, f_out = ctx.b.shape(y)
    return ctx.b.op("reshape", [y], shape=[n, o, 1, f_out] if ta == 2 else [n, o, f_out, 1])


def refuse_pool(ctx: Ctx, node: fx.Node, x, kernel, *_args, **_kwargs) -> None:
    """Pooling is not lowered; over time it could not stream at all: say which."""
    x = x if isinstance(x, Sym) else None
    shape = ctx.b.shape(x) if x is not None else ()
    spatial = shape[len(shape) - len(kernel) :]
    name = module_name(node).replace("a convolution", "a pooling")
    if any(n == 1 and k > 1 for n, k in zip(spatial, kernel)):
        raise UnsupportedModelError(
            f"{name} pools over time (kernel {list(kernel)}, one frame per step along time): "
            "a stream gives one output per input step, so pooling or downsampling over time "
            "is not supported"
        )
    raise UnsupportedModelError(f"{name}: pooling ({node.target}) is not supported yet")
