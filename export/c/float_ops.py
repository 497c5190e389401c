"""Float32 C kernels, one per Graph op; each is the C of its numpy definition in
runtime/ops.py (same formula, same float32 rounding order where numpy's is fixed; matmuls
and reductions sum in their own order, within float32 rounding of numpy's).

A kernel takes (emitter, node, input tensors, output shape) and returns the output Tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from rnnedge.export.c.emitter import CEmitter, Tensor, c_float
from rnnedge.export.c.nn_ops import NN_KERNELS
from rnnedge.export.c.panels import pack_panels
from rnnedge.runtime.graph import Node
from rnnedge.runtime.ops import slice_

Kernel = Callable[[CEmitter, Node, list[Tensor], tuple[int, ...]], Tensor]

BINARY = {
    "add": "a0 + a1",
    "sub": "a0 - a1",
    "mul": "a0 * a1",
    "div": "a0 / a1",
    "pow": "powf(a0, a1)",
    "maximum": "rn_max(a0, a1)",
    "minimum": "rn_min(a0, a1)",
}
UNARY = {
    "neg": "-a0",
    "abs": "fabsf(a0)",
    "sqrt": "sqrtf(a0)",
    "rsqrt": "1.0f / sqrtf(a0)",
    "exp": "rn_vexp(a0)",  # numpy's own float32 exp (prelude.py), vectorised: expf is not
    "log": "logf(a0)",
    "sigmoid": "rn_sigmoid(a0)",
    "tanh": "rn_tanh(a0)",
    "relu": "rn_max(a0, 0.0f)",
}


def _expr(expr: str) -> Kernel:
    return lambda em, node, ins, shape: em.elementwise(ins, shape, None, expr)


def gelu(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    if node.attrs["approximate"] == "tanh":
        k = c_float(math.sqrt(2 / math.pi))
        inner = f"{k} * (a0 + 0.044715f * (a0 * a0 * a0))"
        return em.elementwise(ins, shape, None, f"0.5f * a0 * (1.0f + tanhf({inner}))")
    # numpy: 0.5 * x (float32) times (1 + erf(x / sqrt 2)) in float64, cast to float32
    r2 = c_float(math.sqrt(2))
    expr = f"(float)((double)(0.5f * a0) * (1.0 + rn_erf((double)(a0 / {r2}))))"
    return em.elementwise(ins, shape, None, expr)


def linear(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    # y[m, n] = b[n] + sum_k x[m, k] w[n, k], each sum in k order. A constant weight is stored
    # transposed [K][N] in column panels (gemm.pack_panels: rn_gemv reads each in address
    # order); one computed in the step is read [N, K] as it is.
    x, w = ins[0], ins[1]
    n_out, k_in = w.shape
    init = f"{ins[2].var}[n]" if len(ins) == 3 else "0.0f"
    if node.inputs[1] not in em.constants:
        body = [
            f"for (int n = 0; n < {n_out}; n++) for (int k = 0; k < {k_in}; k++)",
            f"    yr[n] += xr[k] * {w.var}[n * {k_in} + k];",
        ]
    else:
        wv = np.asarray(em.constants[node.inputs[1]], np.float32)
        wt = em.const(pack_panels(wv), "float", "w^T [K][N] in column panels")
        body = [f"rn_gemv(xr, {wt}, {k_in}, {n_out}, yr);"]
    return linear_rows(em, x, shape, (n_out, k_in), init, body)


def linear_rows(
    em: CEmitter, x: Tensor, shape: tuple[int, ...], nk: tuple[int, int], init: str, body: list[str]
) -> Tensor:
    """The loop over a linear's rows m: yr (the output row, set to `init`, an expression of n)
    and xr (the input row) for `body`, the lines that sum into yr."""
    n_out, k_in = nk
    y = em.scratch(shape)
    em.line(f"for (int m = 0; m < {x.size // max(k_in, 1)}; m++) {{")
    em.line(f"    float *yr = {y.var} + m * {n_out};")
    em.line(f"    const float *xr = {x.var} + m * {k_in};")
    em.line(f"    for (int n = 0; n < {n_out}; n++) yr[n] = {init};")
    for line in body:
        em.line("    " + line)
    em.line("}")
    return y


def conv1d(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    # y[b, o, l] = bias[o] + sum_{c, k} x[b, g cg + c, l stride + k dil - pad] w[o, c, k]
    a = node.attrs
    x, w = ins[0], ins[1]
    (nb, ch, length), (o, cg, kk) = x.shape, w.shape
    groups, out_len = int(a["groups"]), shape[2]
    og = o // groups
    y = em.scratch(shape)
    bias = f"{ins[2].var}[o]" if len(ins) == 3 else "0.0f"
    em.line(f"for (int b = 0; b < {nb}; b++) for (int o = 0; o < {o}; o++)")
    em.line(f"for (int l = 0; l < {out_len}; l++) {{")
    em.line(f"    float acc = {bias}; const int g = o / {og};")
    em.line(f"    for (int c = 0; c < {cg}; c++) for (int k = 0; k < {kk}; k++) {{")
    em.line(f"        const int p = l * {a['stride']} + k * {a['dilation']} - {a['padding']};")
    em.line(f"        if (p < 0 || p >= {length}) continue;")
    em.line(
        f"        acc += {x.var}[(b * {ch} + g * {cg} + c) * {length} + p]"
        f" * {w.var}[(o * {cg} + c) * {kk} + k];"
    )
    em.line("    }")
    em.line(f"    {y.var}[(b * {o} + o) * {out_len} + l] = acc;")
    em.line("}")
    return y


def layer_norm(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    # over the last `axes` dims: (x - mean) / sqrt(var + eps) * w + b, biased variance
    x = ins[0]
    d = math.prod(x.shape[len(x.shape) - int(node.attrs["axes"]) :])
    rows = x.size // max(d, 1)
    y = em.scratch(shape)
    eps = c_float(node.attrs["eps"])
    em.line(f"for (int r = 0; r < {rows}; r++) {{")
    em.line(f"    const float *xr = {x.var} + r * {d}; float *yr = {y.var} + r * {d};")
    em.line("    float s = 0.0f, v = 0.0f, mean, den;")
    em.line(f"    for (int j = 0; j < {d}; j++) s += xr[j];")
    em.line(f"    mean = s / {d}.0f;")
    em.line(f"    for (int j = 0; j < {d}; j++) {{ const float t = xr[j] - mean; v += t * t; }}")
    em.line(f"    den = sqrtf(v / {d}.0f + {eps});")
    w = f" * {ins[1].var}[j]" if len(ins) > 1 else ""
    b = f" + {ins[2].var}[j]" if len(ins) > 2 else ""
    em.line(f"    for (int j = 0; j < {d}; j++) yr[j] = (xr[j] - mean) / den{w}{b};")
    em.line("}")
    return y


def reduce(mean: bool) -> Kernel:
    def kernel(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
        # the reduced axes moved last (a gather), then each output sums a contiguous run
        x = ins[0]
        axes = [int(a) for a in node.attrs["axes"]]
        keep = [a for a in range(len(x.shape)) if a not in axes]
        src = np.arange(x.size).reshape(x.shape).transpose(keep + axes)
        run = math.prod(x.shape[a] for a in axes)
        moved = em.gather(x, src)
        y = em.scratch(shape)
        div = f" / {run}.0f" if mean else ""
        em.line(f"for (int r = 0; r < {y.size}; r++) {{")
        em.line(f"    float s = 0.0f; const float *xr = {moved.var} + r * {run};")
        em.line(f"    for (int j = 0; j < {run}; j++) s += xr[j];")
        em.line(f"    {y.var}[r] = s{div};")
        em.line("}")
        return y

    return kernel


def index_map(node: Node, shape: tuple[int, ...]) -> np.ndarray:
    """The shape ops as a map from output element to input element (-1: padding)."""
    a = node.attrs
    src = np.arange(math.prod(shape)).reshape(shape)
    if node.op == "transpose":
        return src.transpose(a["perm"])
    if node.op == "expand":
        return np.broadcast_to(src, np.broadcast_shapes(shape, tuple(a["shape"])))
    if node.op == "slice":
        return slice_(src, axis=a["axis"], start=a["start"], end=a["end"], step=a["step"])
    widths = [tuple(p) for p in a["pads"]]
    if a["mode"] == "reflect":
        return np.pad(src, widths, mode="reflect")
    return np.pad(src, widths, mode="constant", constant_values=-1)


def move(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    fill = float(node.attrs.get("value", 0.0)) if node.op == "pad" else 0.0
    return em.gather(ins[0], index_map(node, ins[0].shape), fill)


def reshape(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    return em.alias(ins[0], shape)


def concat(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    axis = int(node.attrs["axis"])
    out = em.scratch(shape, ins[0].q)
    dst = np.arange(math.prod(shape)).reshape(shape)
    start = 0
    for t in ins:
        part = slice_(dst, axis=axis, start=start, end=start + t.shape[axis], step=1)
        start += t.shape[axis]
        k = em.const(part.ravel(), "int32_t", "concat index")
        em.line(f"for (int i = 0; i < {t.size}; i++) {out.var}[{k}[i]] = {t.var}[i];")
    return out


FLOAT_KERNELS: dict[str, Kernel] = {
    **{op: _expr(e) for op, e in BINARY.items()},
    **{op: _expr(e) for op, e in UNARY.items()},
    "gelu": gelu,
    "linear": linear,
    "conv1d": conv1d,
    "layer_norm": layer_norm,
    "mean": reduce(True),
    "sum": reduce(False),
    "reshape": reshape,
    "transpose": move,
    "expand": move,
    "slice": move,
    "pad": move,
    "concat": concat,
    **NN_KERNELS,
}
