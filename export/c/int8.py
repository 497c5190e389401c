"""Full-integer C kernels: the numpy integer spec (runtime/quant/int8.py) in C, node for node.

`int8_kernel` makes the same choice Int8Executor._compile makes for every node (an integer
kernel, a widened int16 one, or a float island between dequantize and quantize), and every
integer kernel does the spec's arithmetic in the spec's order: fp32 requantization (rintf,
half to even) for int8 linear/add/sub/mul, TFLite fixed point (rq_mbqm) for int16 and relu,
lookup tables built by the spec's own `lookup_table`. The parameters (multipliers, shifts,
tables, quantized weights and biases) are computed here by the runtime's functions, so the C
and numpy read the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnedge.export.c.emitter import CEmitter, Tensor, c_float
from rnnedge.export.c.float_ops import FLOAT_KERNELS, concat, move, reshape
from rnnedge.export.c.fused import dequantize_to_float, lut_s8, quantize32
from rnnedge.export.c.int8_weight_only import linear_weight_only
from rnnedge.export.c.nn_ops import gather_rows
from rnnedge.export.c.simd import BLOCK_K, BLOCK_N, pack_int8
from rnnedge.runtime.graph import Node
from rnnedge.runtime.ops import sigmoid
from rnnedge.runtime.quant.fixed import lookup_table, quantize_multiplier
from rnnedge.runtime.quant.int8 import widen
from rnnedge.runtime.quant.plan import QParams, QuantPlan, quantize_bias, quantize_weight

F32 = np.float32
IntKernel = Callable[[CEmitter, Node, list[Tensor], QParams], Tensor]


def _mbqm(real: float) -> tuple[int, int]:
    return quantize_multiplier(float(real))


def quantize_to(em: CEmitter, t: Tensor, q: QParams) -> Tensor:
    return quantize32(em, t, q)  # the int64 rq_quantize's integers, vectorised (fused.py)


def clamp_bounds(out: QParams) -> tuple[str, str]:
    """`out`'s range minus its zero point, as the float literals rq_rint_clamp32 clamps to."""
    return c_float(out.lo - out.zp), c_float(out.hi - out.zp)


def rint_to(v: str, out: QParams) -> str:
    """clamp(rint(v) + zp) to `out`'s range as one rq_rint_clamp32 (prelude.py)."""
    lo, hi = clamp_bounds(out)
    return f"rq_rint_clamp32({v}, {lo}, {hi}, {out.zp})"


def requant(em: CEmitter, t: Tensor, to: QParams) -> Tensor:
    """Integers at t.q -> integers at `to` (int8.py _requant); nothing when they agree."""
    p = t.q
    if p == to:
        return t
    qm, sh = _mbqm(float(F32(p.scale)) / float(F32(to.scale)))
    expr = f"rq_clamp(rq_mbqm(a0 - {p.zp}, {qm}, {sh}) + {to.zp}, {to.lo}, {to.hi})"
    return em.elementwise([t], t.shape, to, expr)


def int8_kernel(
    em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...], plan: QuantPlan
) -> Tensor:
    out = plan.params(node.outputs[0])
    if node.op == "gather" and plan.weight(node.outputs[0]) is not None:
        return gather_int8(em, node, ins, shape, plan)
    if node.op == "linear" and out is not None and ins[0].q is not None:
        return linear(em, node, ins, out, plan)
    if node.op == "linear" and plan.weight(node.outputs[0]) is not None:
        return linear_weight_only(em, node, ins, shape, plan)
    if out is None or node.op not in INT or any(t.q is None for t in ins):
        floats = [t if t.q is None else dequantize_to_float(em, t) for t in ins]
        y = FLOAT_KERNELS[node.op](em, node, floats, shape)
        return y if out is None else quantize_to(em, y, out)
    if node.op in ("add", "sub", "mul") and out.dtype == "int16":
        ins = [requant(em, t, widen(t.q)) for t in ins]
    return INT[node.op](em, node, ins, out)


@dataclass(frozen=True)
class LinearS8:
    """An int8 linear's constants as the spec rounds them, packed for rq_gemv_s8 / rq_gemm_s8."""

    n_out: int
    k_in: int
    rows: int  # rows of x per stream
    nb: int  # blocks of BLOCK_N outputs
    k4: int  # quads of k
    packed: np.ndarray
    row_sums: np.ndarray
    bias: np.ndarray
    scale: np.ndarray
    wide: str  # the C type of acc + bias: int32 unless its bound passes 2^31


def linear_s8(constants: dict, node: Node, x: Tensor, out: QParams, plan: QuantPlan) -> LinearS8:
    # acc[n] = sum_k (x[k] - x_zp) w_q[n, k] (int32) + b_q[n]; y = rint(acc * s[n]) + y_zp
    w_t = plan.weight(node.outputs[0])
    if w_t is None or w_t.tensor != node.inputs[1]:
        raise ValueError(f"quant.json: no int8 weight for linear {node.outputs[0]!r}")
    if x.q.dtype != "int8":
        raise ValueError(f"linear {node.outputs[0]!r}: an int8 kernel needs an int8 input")
    w = constants[w_t.tensor]
    n_out, k_in = w.shape
    w_q = quantize_weight(w, w_t.scale)
    bias = np.zeros(n_out, np.int64)
    if len(node.inputs) == 3:
        b_t = plan.bias(node.inputs[2])
        if b_t is None:
            raise ValueError(f"quant.json: no int32 bias for linear {node.outputs[0]!r}")
        bias = quantize_bias(constants[node.inputs[2]], b_t.scale)
    w_scale = np.asarray(w_t.scale, np.float64).astype(F32).astype(np.float64)
    scale = (float(F32(x.q.scale)) * w_scale / float(F32(out.scale))).astype(F32)
    packed, nb, k4 = pack_int8(w_q)
    row_sums = np.zeros(nb * BLOCK_N, np.int64)
    row_sums[:n_out] = w_q.astype(np.int64).sum(axis=1)
    bound = int(np.abs(bias).max(initial=0)) + 255 * 128 * k_in
    wide = "int64_t" if bound >= 2**31 else "int32_t"
    rows = x.size // max(k_in, 1)
    return LinearS8(n_out, k_in, rows, nb, k4, packed, row_sums, bias, scale, wide)


def requantize_lines(
    acc: str, bias: str, scale: str, y: str, ctype: str, lin: LinearS8, out: QParams
) -> list[str]:
    """y[n] = clamp(rint((acc[n] + b[n]) * s[n]) + zp), n < n_out: in a loop of its own, so it
    vectorises. The clamp is taken as clamp(rint(v), lo - zp, hi - zp) + zp in float, exact
    for these small integers; acc + b is the spec's int64 sum, in int32 where it cannot
    overflow (it then vectorises without AVX-512's int64 -> float conversion)."""
    lo, hi = c_float(out.lo - out.zp), c_float(out.hi - out.zp)
    return [
        f"for (int n = 0; n < {lin.n_out}; n++) {{",
        f"    const float v = (float)(({lin.wide}){acc}[n] + {bias}[n]) * {scale}[n];",
        f"    const float r0 = rintf(v), r1 = r0 > {lo} ? r0 : {lo};",
        f"    const float r = r1 < {hi} ? r1 : {hi};",
        f"    ({y})[n] = ({ctype})((int32_t)r + {out.zp});",
        "}",
    ]


def linear(em: CEmitter, node: Node, ins: list[Tensor], out: QParams, plan: QuantPlan) -> Tensor:
    x = ins[0]
    lin = linear_s8(em.constants, node, x, out, plan)
    rows, n_out, k_in, nb, k4 = lin.rows, lin.n_out, lin.k_in, lin.nb, lin.k4
    wq = em.const(lin.packed, "int8_t", "w_q packed [N/16][K/4][16][4] (export/c/simd.py)")
    rk = em.const(lin.row_sums, "int32_t", "row sums of w_q")
    bk = em.const(lin.bias, "int32_t", "b_q")
    sk = em.const(lin.scale, "float", "requantization scale")
    y = em.scratch((rows, n_out), out)
    acc = em.scratch((nb * BLOCK_N,), ctype="int32_t")
    tmp = em.scratch((2 * k4,), ctype="int32_t")
    xp = x.var
    if k_in % BLOCK_K:  # a padded copy: the kernel reads K/4 whole quads
        xp = em.scratch((k4 * BLOCK_K,), ctype="int8_t").var
        em.line(f"for (int k = {k_in}; k < {k4 * BLOCK_K}; k++) {xp}[k] = 0;")
    em.line(f"for (int m = 0; m < {rows}; m++) {{")
    if xp != x.var:
        em.line(f"    for (int k = 0; k < {k_in}; k++) {xp}[k] = {x.var}[m * {k_in} + k];")
    xrow = xp if xp != x.var else f"{x.var} + m * {k_in}"
    if lin.wide == "int32_t" and y.ctype == "int8_t":  # requantized in the kernel (simd.py)
        lo, hi = clamp_bounds(out)
        em.line(
            f"    rq_linear_s8({xrow}, {x.q.zp}, {wq}, {rk}, {nb}, {k4}, {bk}, {sk}, {lo}, {hi},"
            f" {out.zp}, {n_out}, {y.var} + m * {n_out}, {acc.var}, {tmp.var});"
        )
    else:
        em.line(f"    rq_gemv_s8({xrow}, {x.q.zp}, {wq}, {rk}, {nb}, {k4}, {acc.var}, {tmp.var});")
        yrow = f"{y.var} + m * {n_out}"
        for line in requantize_lines(acc.var, bk, sk, yrow, y.ctype, lin, out):
            em.line("    " + line)
    em.line("}")
    return Tensor(y.var, (*x.shape[:-1], n_out), out)


def gather_int8(
    em: CEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...], plan: QuantPlan
) -> Tensor:
    # Int8Executor._gather: the int8 row times its row's float32 scale, quantized to the output
    t = plan.weight(node.outputs[0])
    table = em.constants[node.inputs[0]]
    if t is None or t.tensor != node.inputs[0] or table.ndim != 2:
        raise ValueError(f"quant.json: no int8 table for gather {node.outputs[0]!r}")
    qt = em.const(quantize_weight(table, t.scale), "int8_t", "table_q [V][D]")
    sk = em.const(np.asarray(t.scale, F32), "float", "row scale")
    y = gather_rows(em, Tensor("", table.shape), ins[1], shape, qt, sk)
    out = plan.params(node.outputs[0])
    return y if out is None else quantize_to(em, y, out)


def add_sub(sign: int) -> IntKernel:
    def kernel(em: CEmitter, node: Node, ins: list[Tensor], out: QParams) -> Tensor:
        a, b = (t.q for t in ins)
        shape = tuple(np.broadcast_shapes(*(t.shape for t in ins)))
        if out.dtype == "int16":  # reference/integer_ops/add.h: shifted left 15, fixed point
            twice = 2 * max(float(F32(a.scale)), float(F32(b.scale)))
            qa, sa = _mbqm(float(F32(a.scale)) / twice)
            qb, sb = _mbqm(float(F32(b.scale)) / twice)
            qo, so = _mbqm(twice / ((1 << 15) * float(F32(out.scale))))
            ea = f"rq_mbqm((a0 - {a.zp}) * 32768, {qa}, {sa})"
            # sub.cc negates input 2's multiplier (not the product: SRDHM is not odd at ties)
            eb = f"rq_mbqm((a1 - {b.zp}) * 32768, {sign * qb}, {sb})"
            v = f"rq_mbqm({ea} + {eb}, {qo}, {so})"
            expr = f"rq_clamp({v} + {out.zp}, {out.lo}, {out.hi})"
            return em.elementwise(ins, shape, out, expr)
        # fp32 requantization, as XNNPACK; every value fits int32
        ra, rb = (c_float(F32(F32(p.scale) / F32(out.scale))) for p in (a, b))
        t = f"((float)(a1 - {b.zp}) * {rb})"
        v = f"(float)(a0 - {a.zp}) * {ra} + {c_float(sign)} * {t}"
        return em.elementwise(ins, shape, out, rint_to(v, out), "int32_t")

    return kernel


def mul(em: CEmitter, node: Node, ins: list[Tensor], out: QParams) -> Tensor:
    a, b = (t.q for t in ins)
    shape = tuple(np.broadcast_shapes(*(t.shape for t in ins)))
    real = float(F32(a.scale)) * float(F32(b.scale)) / float(F32(out.scale))
    prod = f"((a0 - {a.zp}) * (a1 - {b.zp}))"
    if out.dtype == "int16":
        qm, sh = _mbqm(real)
        v = f"rq_mbqm({prod}, {qm}, {sh})"
        return em.elementwise(ins, shape, out, f"rq_clamp({v} + {out.zp}, {out.lo}, {out.hi})")
    if a.dtype != "int8" or b.dtype != "int8":  # an int16 product needs int64
        v = f"rq_rint((float){prod} * {c_float(real)})"
        return em.elementwise(ins, shape, out, f"rq_clamp({v} + {out.zp}, {out.lo}, {out.hi})")
    # int8 operands: |prod| <= 255 * 255, so int32 throughout
    return em.elementwise(
        ins, shape, out, rint_to(f"(float){prod} * {c_float(real)}", out), "int32_t"
    )


def lut(fn: Callable[[np.ndarray], np.ndarray]) -> IntKernel:
    def kernel(em: CEmitter, node: Node, ins: list[Tensor], out: QParams) -> Tensor:
        p = ins[0].q
        table = lookup_table(fn, p.scale, p.zp, out.scale, out.zp, p.dtype, out.dtype)
        k = em.const(table, Tensor("", (), out).ctype, f"{node.op} table")
        fast = lut_s8(em, ins[0], out, k)  # int8 -> int8: 64 lookups an instruction
        if fast is not None:
            return fast
        return em.elementwise(ins, ins[0].shape, out, f"{k}[a0 - ({p.lo})]", "int32_t")

    return kernel


def relu(em: CEmitter, node: Node, ins: list[Tensor], out: QParams) -> Tensor:
    p = ins[0].q
    qm, sh = _mbqm(float(F32(p.scale)) / float(F32(out.scale)))
    lo = max(out.lo, out.zp)
    expr = f"rq_clamp(rq_mbqm(a0 - {p.zp}, {qm}, {sh}) + {out.zp}, {lo}, {out.hi})"
    return em.elementwise(ins, ins[0].shape, out, expr)


def shape_op(em: CEmitter, node: Node, ins: list[Tensor], out: QParams) -> Tensor:
    fixed = [requant(em, t, out) for t in ins]
    shape = em.shapes[node.outputs[0]]
    kernel = {"reshape": reshape, "slice": move, "transpose": move, "concat": concat}[node.op]
    return kernel(em, node, fixed, shape)


INT: dict[str, IntKernel] = {
    "add": add_sub(1),
    "sub": add_sub(-1),
    "mul": mul,
    "sigmoid": lut(lambda x: sigmoid(x)),
    "tanh": lut(np.tanh),
    "relu": relu,
    "reshape": shape_op,
    "slice": shape_op,
    "concat": shape_op,
    "transpose": shape_op,
}
