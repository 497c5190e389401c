"""Float32 C kernels of the ops an embedding, an attention or a classifier head adds:
softmax, log_softmax, softplus, matmul (two activations), gather (token ids). Each is the C of
its numpy definition in runtime/ops.py, in numpy's order: the max subtracted first, the sum
of exps in numpy's pairwise order (rn_psum), so the float islands of the int8 spec round as
numpy does. exp and log are numpy's own float32 algorithms (prelude.py rn_vexp, rn_nplog);
softplus's log1p is rn_log1p01 (2 ulp, vectorised; libm's log1pf is a scalar call, 30 cycles
an element): numpy takes Intel SVML's on AVX512 machines, itself up to 2 ulp, so a softplus is
within float32 rounding of numpy, not bit for bit."""

from __future__ import annotations

import math

import numpy as np

from rnnedge.export.c.emitter import CEmitter, Tensor, c_float
from rnnedge.runtime.graph import Node


def _rows_last(
    em: CEmitter, x: Tensor, axis: int
) -> tuple[Tensor, np.ndarray | None, tuple[int, ...]]:
    """x with `axis` moved last (a gather unless it is last already), the inverse index map."""
    if axis == len(x.shape) - 1:
        return x, None, x.shape
    perm = [a for a in range(len(x.shape)) if a != axis] + [axis]
    src = np.arange(x.size).reshape(x.shape).transpose(perm)
    back = np.argsort(src.ravel()).reshape(x.shape)
    return em.gather(x, src), back, tuple(src.shape)


def _per_row(log: bool):
    def kernel(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
        x = ins[0]
        axis = int(node.attrs["axis"]) % max(len(x.shape), 1)
        moved, back, mshape = _rows_last(em, x, axis)
        d = mshape[-1] if mshape else 1
        rows = x.size // max(d, 1)
        y = em.scratch(mshape)
        em.line(f"for (int r = 0; r < {rows}; r++) {{")
        em.line(f"    const float *xr = {moved.var} + r * {d}; float *yr = {y.var} + r * {d};")
        em.line("    float m = xr[0], s;")
        em.line(f"    for (int j = 1; j < {d}; j++) m = rn_max(m, xr[j]);")
        em.line(f"    for (int j = 0; j < {d}; j++) yr[j] = rn_vexp(xr[j] - m);")
        em.line(f"    s = rn_psum(yr, {d});")
        if log:  # (x - max) - log(sum exp(x - max))
            em.line("    s = rn_nplog(s);")
            em.line(f"    for (int j = 0; j < {d}; j++) yr[j] = (xr[j] - m) - s;")
        else:
            em.line(f"    for (int j = 0; j < {d}; j++) yr[j] = yr[j] / s;")
        em.line("}")
        return y if back is None else em.gather(y, back)

    return kernel


def softplus(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    # bx = x beta; bx > threshold ? x : (max(bx, 0) + log1p(exp(-|bx|))) / beta, in float32
    beta, thr = c_float(node.attrs["beta"]), c_float(node.attrs["threshold"])
    bx = f"(a0 * {beta})"
    soft = f"(rn_max({bx}, 0.0f) + rn_log1p01(rn_vexp(-fabsf({bx})))) / {beta}"
    return em.elementwise(ins, shape, None, f"{bx} > {thr} ? a0 : {soft}")


def matmul(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    # numpy matmul of [..., M, K] and [..., K, N], batch dims broadcast; each sum in k order
    a, b = ins
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ValueError(f"matmul {node.outputs[0]!r}: a 1-D operand has no C kernel")
    (m, k), n = a.shape[-2:], b.shape[-1]
    batch = tuple(shape[:-2])
    count = math.prod(batch)

    def offsets(t: Tensor, size: int) -> str:
        ix = np.arange(math.prod(t.shape[:-2])).reshape(t.shape[:-2])
        flat = np.broadcast_to(ix, batch).ravel() * size
        return em.const(flat if flat.size else np.zeros(1, np.int64), "int32_t", "batch offset")

    ao, bo = offsets(a, m * k), offsets(b, k * n)
    y = em.scratch(shape)
    em.line(f"for (int q = 0; q < {count}; q++) {{")
    em.line(f"    const float *ab = {a.var} + {ao}[q], *bb = {b.var} + {bo}[q];")
    em.line(f"    float *yb = {y.var} + q * {m * n};")
    em.line(f"    for (int i = 0; i < {m}; i++) for (int j = 0; j < {n}; j++) {{")
    em.line("        float s = 0.0f;")
    em.line(f"        for (int p = 0; p < {k}; p++) s += ab[i * {k} + p] * bb[p * {n} + j];")
    em.line(f"        yb[i * {n} + j] = s;")
    em.line("    }")
    em.line("}")
    return y


def gather(em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    # rows of table [V, ...] at the ids; an id outside [0, V) makes the step return 1 (the
    # runtime checks ids before the call, so this guards memory, not numbers)
    table, ids = ins
    return gather_rows(em, table, ids, shape, table.var, None)


def gather_rows(
    em: CEmitter,
    table: Tensor,
    ids: Tensor,
    shape: tuple[int, ...],
    value: str,
    scale: str | None,
) -> Tensor:
    """out[i, :] = table[ids[i], :] (times scale[ids[i]] when given: an int8 per-row table)."""
    v = table.shape[0]
    d = math.prod(table.shape[1:])
    y = em.scratch(shape)
    em.line(f"for (int i = 0; i < {ids.size}; i++) {{")
    em.line(f"    const int64_t id = (int64_t){ids.var}[i];")
    em.line(f"    if (id < 0 || id >= {v}) return 1;")
    row = f"{value}[id * {d} + j]"
    item = f"(float){row} * {scale}[id]" if scale else row
    em.line(f"    for (int j = 0; j < {d}; j++) {y.var}[i * {d} + j] = {item};")
    em.line("}")
    return y


NN_KERNELS = {
    "softmax": _per_row(False),
    "log_softmax": _per_row(True),
    "softplus": softplus,
    "matmul": matmul,
    "gather": gather,
}
