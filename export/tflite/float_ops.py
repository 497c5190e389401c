"""Lowering of each Graph op (runtime/ops.py) to TFLite builtin operators.

`LOWERINGS` maps an op name to a function `(emitter, node) -> None` that appends operators
computing the node's output. Operator semantics and operand layouts follow the TFLite builtin
op reference (https://ai.google.dev/edge/litert/models/ops_compatibility) and schema.fbs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tflite

from rnnedge.export.tflite.emitter import Emitter, fail
from rnnedge.export.tflite.writer import Options
from rnnedge.runtime.graph import Node

Op = tflite.BuiltinOperator
PAD_MAX_RANK = 5  # tflite/kernels/pad.cc: PadKernelMaxDimensionCount()
Lowering = Callable[[Emitter, Node], None]


# --- elementwise ----------------------------------------------------------------------------


def _elementwise(code: int) -> Lowering:
    # Binary builtins broadcast numpy-style, scalars (shape []) included.
    def lower(e: Emitter, node: Node) -> None:
        e.op(code, [e.tensor(i) for i in node.inputs], [e.tensor(node.outputs[0])])

    return lower


def _gelu(e: Emitter, node: Node) -> None:
    approximate = node.attrs["approximate"]
    if approximate not in ("none", "tanh"):
        raise fail(node, f"approximate={approximate!r} (want 'none' or 'tanh')")
    options = Options("GeluOptions", (("Approximate", approximate == "tanh"),))
    e.op(Op.GELU, [e.tensor(node.inputs[0])], [e.tensor(node.outputs[0])], options)


def _softmax(code: int) -> Lowering:
    # SOFTMAX (beta 1) and LOG_SOFTMAX work along the last axis only: another axis is moved
    # last by TRANSPOSE and back afterwards
    def lower(e: Emitter, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        shape, axis = e.shape(x), int(node.attrs["axis"])
        if not 0 <= axis < len(shape):
            raise fail(node, f"axis {axis} out of range for rank {len(shape)}")
        options = Options("SoftmaxOptions", (("Beta", 1.0),)) if code == Op.SOFTMAX else None
        if axis == len(shape) - 1:
            e.op(code, [e.tensor(x)], [e.tensor(out)], options)
            return
        perm = [*(i for i in range(len(shape)) if i != axis), axis]  # its own inverse's inverse
        moved = tuple(shape[i] for i in perm)
        t = _transpose(e, e.tensor(x), tuple(perm), f"{out}:last", moved)
        y = _step(e, code, [t], f"{out}:soft", moved, options)
        back = [perm.index(i) for i in range(len(shape))]
        e.op(Op.TRANSPOSE, [y, e.const_i32(f"{out}:back", back)], [e.tensor(out)])

    return lower


def _softplus(e: Emitter, node: Node) -> None:
    # TFLite has no SOFTPLUS: max(bx, 0) + log(1 + exp(-|bx|)), over b, and x where bx >
    # threshold (ops.softplus); exp(-|bx|) <= 1 never overflows, and log(1 + e) is off from
    # log1p(e) by at most e's float32 rounding (< 6e-8 absolute)
    x, out = e.tensor(node.inputs[0]), node.outputs[0]
    shape = e.shape(node.inputs[0])
    beta, threshold = float(node.attrs["beta"]), float(node.attrs["threshold"])

    def step(code: int, ins: list[int], tag: str) -> int:
        return _step(e, code, ins, f"{out}:{tag}", shape)

    bx = x if beta == 1.0 else step(Op.MUL, [x, e.const_f32(f"{out}:beta", beta)], "bx")
    tail = step(Op.EXP, [step(Op.NEG, [step(Op.ABS, [bx], "abs")], "neg")], "exp")
    one = e.const_f32(f"{out}:one", np.float32(1))
    log = step(Op.LOG, [step(Op.ADD, [tail, one], "onep")], "log")
    soft = step(Op.ADD, [step(Op.RELU, [bx], "relu"), log], "soft")
    if beta != 1.0:
        soft = step(Op.DIV, [soft, e.const_f32(f"{out}:beta_div", beta)], "scaled")
    above = e.temp(f"{out}:above", shape, tflite.TensorType.BOOL)
    e.op(Op.GREATER, [bx, e.const_f32(f"{out}:threshold", threshold)], [above])
    e.op(Op.SELECT_V2, [above, x, soft], [e.tensor(out)])


def _gather(e: Emitter, node: Node) -> None:
    # GATHER axis 0: rows of the table by int32 / int64 positions (tflite/kernels/gather.cc)
    options = Options("GatherOptions", (("Axis", 0), ("BatchDims", 0)))
    ins = [e.tensor(i) for i in node.inputs]
    e.op(Op.GATHER, ins, [e.tensor(node.outputs[0])], options)


def _matmul(e: Emitter, node: Node) -> None:
    # BATCH_MATMUL: [..., M, K] x [..., K, N] with broadcast batch dims, as numpy matmul
    a, b = node.inputs
    if min(len(e.shape(a)), len(e.shape(b))) < 2:
        raise fail(node, "BATCH_MATMUL needs operands of rank >= 2")
    options = Options("BatchMatMulOptions", (("AdjX", False), ("AdjY", False)))
    e.op(Op.BATCH_MATMUL, [e.tensor(a), e.tensor(b)], [e.tensor(node.outputs[0])], options)


# --- matmul and conv ------------------------------------------------------------------------


def _linear(e: Emitter, node: Node) -> None:
    # FULLY_CONNECTED takes weights [N, K] (PyTorch's layout) and computes x w^T + b.
    # keep_num_dims keeps [..., K] -> [..., N]; without it TFLite flattens to [-1, N].
    x, w, *bias = node.inputs
    out = node.outputs[0]
    if len(e.shape(x)) == 0 or len(e.shape(w)) != 2:
        raise fail(node, f"needs x of rank >= 1 and 2-D weights, got {e.shape(x)}, {e.shape(w)}")
    n = e.shape(w)[0]
    fuse_bias = bool(bias) and e.shape(bias[0]) == (n,)
    options = Options("FullyConnectedOptions", (("KeepNumDims", len(e.shape(x)) != 2),))
    b = e.tensor(bias[0]) if fuse_bias else -1  # -1: optional input omitted
    y = e.tensor(out) if fuse_bias or not bias else e.temp(f"{out}:matmul", e.shape(out))
    e.op(Op.FULLY_CONNECTED, [e.tensor(x), e.tensor(w), b], [y], options)
    if bias and not fuse_bias:  # a bias that only broadcasts to [N] is added separately
        e.op(Op.ADD, [y, e.tensor(bias[0])], [e.tensor(out)])


_CONV_ATTRS = ("stride", "padding", "dilation", "groups")


def _conv1d(e: Emitter, node: Node) -> None:
    # x [N, C, L] is viewed as an NHWC image [N, 1, L, C] and convolved with CONV_2D (filter
    # [O, 1, K, C]) or, when every group holds one input channel, DEPTHWISE_CONV_2D (filter
    # [1, 1, K, O], output channel o reads input channel o // (O / C) as in PyTorch).
    x, w, *bias = node.inputs
    out = node.outputs[0]
    stride, padding, dilation, groups = (int(node.attrs[k]) for k in _CONV_ATTRS)
    (n, c, length), o = e.shape(x), e.shape(w)[0]
    weights = e.constant(w)
    if weights is None:
        raise fail(node, "weights must be a constant to become a TFLite conv filter")
    if min(stride, dilation, groups) < 1 or padding < 0:
        raise fail(node, f"stride {stride}, dilation {dilation}, groups {groups}, pad {padding}")
    common = (("Padding", tflite.Padding.VALID), ("StrideW", stride), ("StrideH", 1))
    dilations = (("DilationWFactor", dilation), ("DilationHFactor", 1))
    if groups == 1:
        code, filt = Op.CONV_2D, weights.transpose(0, 2, 1)[:, None]
        options = Options("Conv2DOptions", common + dilations)
    elif groups == c:
        code, filt = Op.DEPTHWISE_CONV_2D, weights[:, 0, :].T[None, None]
        multiplier = (("DepthMultiplier", o // c),)
        options = Options("DepthwiseConv2DOptions", common + multiplier + dilations)
    else:
        raise fail(node, f"groups={groups} with {c} input channels (TFLite has only groups=1 "
                   "and depthwise convolution)")  # fmt: skip
    # TFLite convs take the bias as an operand; zeros when the Graph has none.
    b = e.tensor(bias[0]) if bias else e.const_f32(f"{out}:bias", np.zeros(o, np.float32))
    image = _transpose(e, e.tensor(x), (0, 2, 1), f"{out}:nlc", (n, length, c))
    # -1, not n: the batch stays free for a resized (batched) interpreter
    image = _reshape(e, image, (n, 1, length, c), f"{out}:nhwc", target=(-1, 1, length, c))
    if padding:  # PyTorch pads with zeros on both sides; an explicit PAD, then VALID
        pads = e.const_i32(f"{out}:pads", [[0, 0], [0, 0], [padding, padding], [0, 0]])
        image = _step(e, Op.PAD, [image, pads], f"{out}:padded", (n, 1, length + 2 * padding, c))
    out_len = e.shape(out)[2]
    filt_t = e.const_f32(f"{out}:filter", filt)
    conv = _step(e, code, [image, filt_t, b], f"{out}:conv", (n, 1, out_len, o), options)
    nlo = _reshape(e, conv, (n, out_len, o), f"{out}:nlo", target=(-1, out_len, o))
    e.op(Op.TRANSPOSE, [nlo, e.const_i32(f"{out}:perm", (0, 2, 1))], [e.tensor(out)])


def _layer_norm(e: Emitter, node: Node) -> None:
    # No LayerNorm builtin: (x - mean) * rsqrt(mean((x - mean)^2) + eps) * w + b, the biased
    # variance over the trailing `axes` dims, as ops.layer_norm.
    x, *affine = node.inputs
    out, shape = node.outputs[0], e.shape(node.inputs[0])
    axes = int(node.attrs["axes"])
    if not 0 < axes <= len(shape):
        raise fail(node, f"axes={axes} for an input of rank {len(shape)}")
    reduced = shape[: len(shape) - axes] + (1,) * axes
    dims = e.const_i32(f"{out}:axes", list(range(len(shape) - axes, len(shape))))
    keep = Options("ReducerOptions", (("KeepDims", True),))
    mean = _step(e, Op.MEAN, [e.tensor(x), dims], f"{out}:mean", reduced, keep)
    centred = _step(e, Op.SUB, [e.tensor(x), mean], f"{out}:centred", shape)
    square = _step(e, Op.MUL, [centred, centred], f"{out}:square", shape)
    var = _step(e, Op.MEAN, [square, dims], f"{out}:var", reduced, keep)
    eps = e.const_f32(f"{out}:eps", np.float32(node.attrs["eps"]))
    var_eps = _step(e, Op.ADD, [var, eps], f"{out}:var_eps", reduced)
    inv_std = _step(e, Op.RSQRT, [var_eps], f"{out}:inv_std", reduced)
    steps = [(Op.MUL, inv_std), *zip((Op.MUL, Op.ADD), map(e.tensor, affine), strict=False)]
    y = centred
    for i, (code, operand) in enumerate(steps):
        if i == len(steps) - 1:  # the last step writes the Graph tensor itself
            e.op(code, [y, operand], [e.tensor(out)])
        else:
            y = _step(e, code, [y, operand], f"{out}:affine{i}", _broadcast(e, y, operand))


# --- reductions and shape ops ---------------------------------------------------------------


def _reduce(code: int) -> Lowering:
    # MEAN / SUM take the axes as an int32 tensor; keep_dims keeps them as size 1.
    def lower(e: Emitter, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        axes = [int(a) for a in node.attrs["axes"]]
        if not axes:  # numpy reduces over nothing: the identity
            _reshape(e, e.tensor(x), e.shape(out), out, into=e.tensor(out))
            return
        options = Options("ReducerOptions", (("KeepDims", bool(node.attrs["keepdims"])),))
        dims = e.const_i32(f"{out}:axes", axes)
        e.op(code, [e.tensor(x), dims], [e.tensor(out)], options)

    return lower


def _reshape_node(e: Emitter, node: Node) -> None:
    # the shape operand is the attribute itself: a batched graph has -1 on its batch axis
    out, target = node.outputs[0], tuple(int(d) for d in node.attrs["shape"])
    _reshape(e, e.tensor(node.inputs[0]), e.shape(out), out, into=e.tensor(out), target=target)


def _transpose_node(e: Emitter, node: Node) -> None:
    out = node.outputs[0]
    perm = e.const_i32(f"{out}:perm", [int(p) for p in node.attrs["perm"]])
    e.op(Op.TRANSPOSE, [e.tensor(node.inputs[0]), perm], [e.tensor(out)])


def _concat(e: Emitter, node: Node) -> None:
    options = Options("ConcatenationOptions", (("Axis", int(node.attrs["axis"])),))
    inputs = [e.tensor(i) for i in node.inputs]
    e.op(Op.CONCATENATION, inputs, [e.tensor(node.outputs[0])], options)


def _expand(e: Emitter, node: Node) -> None:
    # expand broadcasts both ways (a 1 keeps x's dim, as on a batched graph's batch axis);
    # BROADCAST_TO broadcasts x only, so multiply by ones of the attribute's shape instead.
    out = node.outputs[0]
    ones = e.const_f32(f"{out}:ones", np.ones([int(d) for d in node.attrs["shape"]], np.float32))
    e.op(Op.MUL, [e.tensor(node.inputs[0]), ones], [e.tensor(out)])


_SLICE = ("begin", "end", "strides")


def _slice(e: Emitter, node: Node) -> None:
    # STRIDED_SLICE with begin/end/strides over every axis; only `axis` is narrowed.
    x, out = node.inputs[0], node.outputs[0]
    shape = e.shape(x)
    axis, start, end, step = (int(node.attrs[k]) for k in ("axis", "start", "end", "step"))
    if not (0 <= axis < len(shape) and 0 <= start <= shape[axis] and step >= 1):
        raise fail(node, f"slice attrs not normalised: axis {axis} start {start} step {step}")
    begin, stop, strides = [0] * len(shape), [0] * len(shape), [1] * len(shape)
    begin[axis], stop[axis], strides[axis] = start, max(start, min(end, shape[axis])), step
    operands = [
        e.const_i32(f"{out}:{n}", v) for n, v in zip(_SLICE, (begin, stop, strides), strict=True)
    ]
    # every other axis is taken whole through the masks, whatever its size at run time (a
    # batched interpreter resizes the batch axis)
    whole = sum(1 << i for i in range(len(shape)) if i != axis)
    options = Options("StridedSliceOptions", (("BeginMask", whole), ("EndMask", whole)))
    e.op(Op.STRIDED_SLICE, [e.tensor(x), *operands], [e.tensor(out)], options)


def _pad(e: Emitter, node: Node) -> None:
    # PAD fills zeros, PADV2 a given constant; MIRROR_PAD REFLECT mirrors without repeating
    # the edge (numpy "reflect"), which needs each pad to be at most dim - 1.
    x, out = node.inputs[0], node.outputs[0]
    shape = e.shape(x)
    pads = [[int(a), int(b)] for a, b in node.attrs["pads"]]
    mode, value = node.attrs["mode"], float(node.attrs["value"])
    if len(pads) != len(shape) or min((p for pair in pads for p in pair), default=0) < 0:
        raise fail(node, f"pads {pads} must be one non-negative [before, after] per axis")
    if mode == "constant" and len(shape) > PAD_MAX_RANK:
        raise fail(node, f"PAD supports rank <= {PAD_MAX_RANK}, input has rank {len(shape)}")
    operands = [e.tensor(x), e.const_i32(f"{out}:pads", pads)]
    if mode == "reflect":
        if any(max(p) >= d and max(p) > 0 for p, d in zip(pads, shape, strict=True)):
            raise fail(node, f"reflect pads {pads} must be smaller than the dims {shape}")
        options = Options("MirrorPadOptions", (("Mode", tflite.MirrorPadMode.REFLECT),))
        e.op(Op.MIRROR_PAD, operands, [e.tensor(out)], options)
    elif mode != "constant":
        raise fail(node, f"pad mode {mode!r} (want 'constant' or 'reflect')")
    elif value == 0.0:
        e.op(Op.PAD, operands, [e.tensor(out)])
    else:
        fill = e.const_f32(f"{out}:value", np.float32(value))
        e.op(Op.PADV2, [*operands, fill], [e.tensor(out)])


# --- shared pieces --------------------------------------------------------------------------


def _step(
    e: Emitter,
    code: int,
    inputs: list[int],
    name: str,
    shape: tuple[int, ...],
    options: Options | None = None,
) -> int:
    """Appends one operator writing a new temporary tensor `name` and returns that tensor."""
    y = e.temp(name, shape)
    e.op(code, inputs, [y], options)
    return y


def _broadcast(e: Emitter, a: int, b: int) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(e.tensor_shape(a), e.tensor_shape(b)))


def _reshape(
    e: Emitter,
    x: int,
    shape: tuple[int, ...],
    name: str,
    *,
    into: int | None = None,
    target: tuple[int, ...] | None = None,
) -> int:
    # RESHAPE reads the new shape from an int32 vector operand ([0] for a scalar); `target`
    # (default `shape`) may hold one -1, the dim the kernel infers at run time.
    operands = [x, e.const_i32(f"{name}:shape", list(shape if target is None else target))]
    if into is None:
        return _step(e, Op.RESHAPE, operands, name, shape)
    e.op(Op.RESHAPE, operands, [into])
    return into


def _transpose(e: Emitter, x: int, perm: tuple[int, ...], name: str, shape: tuple[int, ...]) -> int:
    return _step(e, Op.TRANSPOSE, [x, e.const_i32(f"{name}:perm", list(perm))], name, shape)


LOWERINGS: dict[str, Lowering] = {
    "add": _elementwise(Op.ADD),
    "sub": _elementwise(Op.SUB),
    "mul": _elementwise(Op.MUL),
    "div": _elementwise(Op.DIV),
    "pow": _elementwise(Op.POW),
    "maximum": _elementwise(Op.MAXIMUM),
    "minimum": _elementwise(Op.MINIMUM),
    "neg": _elementwise(Op.NEG),
    "abs": _elementwise(Op.ABS),
    "sqrt": _elementwise(Op.SQRT),
    "rsqrt": _elementwise(Op.RSQRT),
    "exp": _elementwise(Op.EXP),
    "log": _elementwise(Op.LOG),
    "sigmoid": _elementwise(Op.LOGISTIC),
    "tanh": _elementwise(Op.TANH),
    "relu": _elementwise(Op.RELU),
    "gelu": _gelu,
    "softplus": _softplus,
    "softmax": _softmax(Op.SOFTMAX),
    "log_softmax": _softmax(Op.LOG_SOFTMAX),
    "linear": _linear,
    "matmul": _matmul,
    "gather": _gather,
    "conv1d": _conv1d,
    "layer_norm": _layer_norm,
    "mean": _reduce(Op.MEAN),
    "sum": _reduce(Op.SUM),
    "reshape": _reshape_node,
    "transpose": _transpose_node,
    "concat": _concat,
    "expand": _expand,
    "slice": _slice,
    "pad": _pad,
}
