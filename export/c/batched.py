"""The batched step: `rnnedge_step_n(n, in, out, workspace)` runs every Graph node once over
up to RNNEDGE_BATCH streams, the linears with constant weights as matrix-matrix products
(gemm.py: each weight read once per tile of streams, not once per stream), every other node
as its single-stream kernel in a loop over the streams.

A tensor of the batched step holds its streams one after another, each stream's copy on its
own cache line; a Tensor's `var` is the C pointer of stream `rn_s`, so any single-stream
kernel (float_ops.py, nn_ops.py, int8.py, int8_dynamic.py) emitted inside `for (rn_s ...)`
runs unchanged. The products sum each output in the single step's order (float: bias, then
k in order with RN_MADD; int8: exact int32 sums, the same requantization), so every stream
gets exactly what rnnedge_step gives it. Constants are the single step's arrays
(CEmitter.const keeps one array per distinct value)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from rnnedge.export.c.emitter import ALIGN, BYTES, CEmitter, Tensor
from rnnedge.export.c.float_ops import FLOAT_KERNELS
from rnnedge.export.c.gemm import WIDEST_TILE
from rnnedge.export.c.int8 import (
    dequantize_to_float,
    int8_kernel,
    linear_s8,
    quantize_to,
    requantize_lines,
)
from rnnedge.export.c.int8_dynamic import linear_dynamic
from rnnedge.export.c.panels import pack_panels
from rnnedge.export.c.simd import BLOCK_N
from rnnedge.export.c.walk import GraphWalk, output_value
from rnnedge.runtime.graph import INDEX_DTYPES, Graph, Node
from rnnedge.runtime.quant.plan import QParams, QuantPlan

S = "rn_s"  # the stream index of the batched step's loops
MAX_BATCH = 64
BUDGET = 8 << 20  # bytes of workspace the batched step may take (it then batches fewer)
L2_BLOCK = 256 << 10  # bytes of float weights rn_gemm keeps in cache across the row tiles
PTR = 8  # bytes a pointer may take


@dataclass(frozen=True)
class StepN:
    """The C of rnnedge_step_n, and what model.c / model.h need from it."""

    source: str  # the batched step and rnnedge_step_n (after rnnedge_step in model.c)
    header: list[str]  # its declarations in model.h
    decls: list[str]  # constants only the batched step reads
    workspace: int  # bytes


class BatchEmitter(CEmitter):
    """Workspace tensors of up to `batch` streams; constants and names are the single step's
    emitter's, so both functions share one set of arrays."""

    def __init__(self, base: CEmitter, batch: int) -> None:
        super().__init__(base.constants)
        self.base, self.batch = base, batch
        self.shapes = base.shapes
        self.temp = 0  # bytes of the scratch one node uses and the next reuses
        self.temp_max = 0

    def fresh(self, prefix: str) -> str:
        return self.base.fresh(prefix)

    def const(self, values: np.ndarray, ctype: str, what: str = "") -> str:
        return self.base.const(values, ctype, what)

    def scratch(self, shape: Sequence[int], q: QParams | None = None, ctype: str = "") -> Tensor:
        t = Tensor("", tuple(shape), q)
        ctype = ctype or t.ctype
        stride = -(-max(t.size, 1) * BYTES[ctype] // ALIGN) * ALIGN
        var = f"(({ctype} *)(ws + {self.workspace}) + {S} * {stride // BYTES[ctype]})"
        self.workspace += stride * self.batch
        return Tensor(var, t.shape, q)

    def alias(self, src: Tensor, shape: Sequence[int], offset: int = 0) -> Tensor:
        return Tensor(src.var if offset == 0 else f"({src.var} + {offset})", tuple(shape), src.q)

    def temps(self, *sizes: int) -> list[str]:
        """Pointers (unsigned char *) to scratch of these byte sizes that lives for one node."""
        out = []
        for size in sizes:
            out.append(f"(rn_tmp + {self.temp})")
            self.temp += -(-size // ALIGN) * ALIGN
        self.temp_max = max(self.temp_max, self.temp)
        return out


class BatchProgram(GraphWalk):
    def __init__(self, graph: Graph, plan: QuantPlan | None, em: BatchEmitter) -> None:
        super().__init__(graph, plan, em)
        self.scheme = "float" if plan is None else plan.scheme

    @contextmanager
    def each(self) -> Iterator[None]:
        """The code emitted inside, for every stream."""
        body = self.em.body
        body.append(f"    for (int {S} = 0; {S} < rn_n; {S}++) {{")
        start = len(body)
        yield
        if len(body) == start:  # a view (reshape, contiguous slice): no code
            body.pop()
        else:
            body.append("    }")

    def emit(self) -> None:
        em = self.em
        for i, t in enumerate(self.graph.inputs):
            ctype = f"{t.dtype}_t" if t.dtype in INDEX_DTYPES else "float"
            raw = Tensor(f"((const {ctype} *)in[{i}] + {S} * {math.prod(t.shape)})", t.shape)
            q = self.params(t.name)
            if q is not None:
                with self.each():
                    raw = quantize_to(em, raw, q)
            self.tensors[t.name] = raw
        for node in self.graph.nodes:
            em.comment(f"{node.op} -> {node.outputs[0]}")
            em.temp = 0
            out = self._node(node)
            want = em.shapes[node.outputs[0]]
            if out.size != math.prod(want):
                raise ValueError(f"{node.op} {node.outputs[0]!r}: {out.shape} != {want}")
            self.tensors[node.outputs[0]] = Tensor(out.var, tuple(want), out.q)
        for j, t in enumerate(self.graph.outputs):
            src = self.tensors[t.name]
            dst = f"(out[{j}] + {S} * {src.size})"
            with self.each():
                em.line(f"for (int i = 0; i < {src.size}; i++) {dst}[i] = {output_value(src)};")

    def _node(self, node: Node) -> Tensor:
        ins = [self.input(node, i) for i in range(len(node.inputs))]
        shape = self.em.shapes[node.outputs[0]]
        em, plan = self.em, self.plan
        constant = all(n in self.graph.constants for n in node.inputs[1:])
        if node.op == "linear" and constant and self.scheme in ("float", "int8"):
            out = self.params(node.outputs[0])
            if self.scheme == "float":
                return linear_float(em, node, ins, shape)
            if out is not None and ins[0].q is not None:  # int8.int8_kernel's choice
                return linear_int8(em, node, ins[0], out, plan)
            if plan.weight(node.outputs[0]) is not None:  # weight-only int8, stream by stream
                with self.each():
                    return int8_kernel(em, node, ins, shape, plan)
            with self.each():  # a float island: dequantize, the float product, quantize
                ins = [t if t.q is None else dequantize_to_float(em, t) for t in ins]
            y = linear_float(em, node, ins, shape)
            if out is not None:
                with self.each():
                    y = quantize_to(em, y, out)
            return y
        with self.each():
            if self.scheme == "int8-dynamic" and plan.weight(node.outputs[0]) is not None:
                return linear_dynamic(em, node, ins, plan.weight(node.outputs[0]))
            if self.scheme == "int8":
                return int8_kernel(em, node, ins, shape, plan)
            return FLOAT_KERNELS[node.op](em, node, ins, shape)


def _rows_pointers(em: BatchEmitter, x: Tensor, k_in: int, rows: int) -> str:
    """C that fills rn_x[s * rows + m] with row m of stream s of x."""
    return (
        f"for (int {S} = 0; {S} < rn_n; {S}++) for (int m = 0; m < {rows}; m++) "
        f"rn_x[{S} * {rows} + m] = {x.var} + m * {k_in};"
    )


def linear_float(em: BatchEmitter, node: Node, ins: list[Tensor], shape: tuple[int, ...]) -> Tensor:
    # float_ops.linear over every stream's rows at once: y = b + x w^T, w^T stored [K][N]
    x = ins[0]
    w = np.asarray(em.constants[node.inputs[1]], np.float32)
    n_out, k_in = w.shape
    rows = x.size // max(k_in, 1)
    y = em.scratch(shape)
    wt = em.const(pack_panels(w), "float", "w^T [K][N] in column panels")
    bias = ins[2].var if len(ins) == 3 else "(const float *)0"
    nblk = max(32, L2_BLOCK // (4 * max(k_in, 1)) // 32 * 32)
    xp, yp, tp = em.temps(em.batch * rows * PTR, em.batch * rows * PTR, 16 * max(k_in, 1))
    em.line("{")
    em.line(f"    const float **rn_x = (const float **)(void *){xp};")
    em.line(f"    float **rn_y = (float **)(void *){yp};")
    em.line("    " + _rows_pointers(em, x, k_in, rows))
    em.line(
        f"    for (int {S} = 0; {S} < rn_n; {S}++) for (int m = 0; m < {rows}; m++) "
        f"rn_y[{S} * {rows} + m] = {y.var} + m * {n_out};"
    )
    if n_out < WIDEST_TILE:  # no tile would run; the bias never reaches one (gemm.py)
        em.line(f"    rn_gemm_rest(rn_x, rn_y, rn_n * {rows}, {wt}, {bias}, {k_in}, {n_out}, 0);")
    else:
        em.line(f"    float *rn_xt = (float *)(void *){tp};")
        em.line(
            f"    rn_gemm(rn_x, rn_y, rn_n * {rows}, {wt}, {bias}, {k_in}, {n_out}, {nblk}, rn_xt);"
        )
    em.line("}")
    return y


def linear_int8(em: BatchEmitter, node: Node, x: Tensor, out: QParams, plan: QuantPlan) -> Tensor:
    # int8.linear over every stream's rows at once: the same constants, sums, requantization
    lin = linear_s8(em.constants, node, x, out, plan)
    rows, n_out, k_in, nb, k4 = lin.rows, lin.n_out, lin.k_in, lin.nb, lin.k4
    wq, rk = em.const(lin.packed, "int8_t"), em.const(lin.row_sums, "int32_t")
    bk, sk = em.const(lin.bias, "int32_t"), em.const(lin.scale, "float")
    y = em.scratch((rows, n_out), out)
    m_all = em.batch * rows
    tp, ap = em.temps(m_all * 2 * k4 * 4, m_all * BLOCK_N * nb * 4)
    row = f"({S} * {rows} + m)"
    em.line("{")
    em.line(f"    int32_t *rn_t = (int32_t *)(void *){tp}, *rn_acc = (int32_t *)(void *){ap};")
    em.line(f"    for (int {S} = 0; {S} < rn_n; {S}++) for (int m = 0; m < {rows}; m++)")
    em.line(
        f"        rq_pack_s8({x.var} + m * {k_in}, {k_in}, {x.q.zp}, {k4}, "
        f"rn_t + (long){row} * {2 * k4});"
    )
    em.line(f"    rq_gemm_s8(rn_t, rn_n * {rows}, {x.q.zp}, {wq}, {rk}, {nb}, {k4}, rn_acc);")
    em.line(f"    for (int {S} = 0; {S} < rn_n; {S}++) for (int m = 0; m < {rows}; m++) {{")
    em.line(f"        const int32_t *acc = rn_acc + (long){row} * {BLOCK_N * nb};")
    em.line(f"        {y.ctype} *yr = {y.var} + m * {n_out};")
    for line in requantize_lines("acc", bk, sk, "yr", y.ctype, lin, out):
        em.line("        " + line)
    em.line("    }")
    em.line("}")
    return Tensor(y.var, (*x.shape[:-1], n_out), out)


STEP_N = """/* up to RNNEDGE_BATCH streams, each node once over all of them */
static int rn_step_b(int rn_n, const float *const *in, float *const *out, unsigned char *ws)
{{
    unsigned char *rn_tmp = ws + {temp_at};
    (void)rn_tmp; (void)in; (void)out;
{body}
    return 0;
}}

int rnnedge_step_n(int n, const float *const *in, float *const *out, void *workspace)
{{
    const float *ip[{ni}]; float *op[{no}];
    for (int s0 = 0; s0 < n; s0 += RNNEDGE_BATCH) {{
        const int b = n - s0 < RNNEDGE_BATCH ? n - s0 : RNNEDGE_BATCH;
        for (int i = 0; i < {n_in}; i++)
            ip[i] = (const float *)((const char *)in[i]
                + (long)s0 * rnnedge_input_sizes[i] * rnnedge_input_itemsize[i]);
        for (int j = 0; j < {n_out}; j++) op[j] = out[j] + (long)s0 * rnnedge_output_sizes[j];
        if (rn_step_b(b, ip, op, (unsigned char *)workspace)) return 1;
    }}
    return 0;
}}

int rnnedge_step_each(int n, const float *const *in, float *const *out, void *workspace)
{{
    const float *ip[{ni}]; float *op[{no}];
    for (int s = 0; s < n; s++) {{
        for (int i = 0; i < {n_in}; i++)
            ip[i] = (const float *)((const char *)in[i]
                + (long)s * rnnedge_input_sizes[i] * rnnedge_input_itemsize[i]);
        for (int j = 0; j < {n_out}; j++) op[j] = out[j] + (long)s * rnnedge_output_sizes[j];
        if (rnnedge_step(ip, op, workspace)) return 1;
    }}
    return 0;
}}

const long rnnedge_workspace_n_bytes = {workspace};
const int rnnedge_batch = RNNEDGE_BATCH;
"""

HEADER = """/* n streams in one call, each tensor holding the n streams one after another: every
 * node runs once over up to RNNEDGE_BATCH streams at a time, the linears as matrix-matrix products
 * (each weight read once per tile of streams); each stream gets exactly rnnedge_step's numbers.
 * workspace: RNNEDGE_WORKSPACE_N_BYTES (any n), 64-byte aligned */
#define RNNEDGE_BATCH {batch}
#define RNNEDGE_WORKSPACE_N_BYTES {workspace}
extern const long rnnedge_workspace_n_bytes;
extern const int rnnedge_batch;
int rnnedge_step_n(int n, const float *const *in, float *const *out, void *workspace);
/* n streams by calling rnnedge_step for each (workspace: RNNEDGE_WORKSPACE_BYTES) */
int rnnedge_step_each(int n, const float *const *in, float *const *out, void *workspace);"""


def batch_size(single_workspace: int) -> int:
    """Streams per pass: 64, fewer when 64 copies of the step's tensors pass BUDGET."""
    return max(1, min(MAX_BATCH, BUDGET // max(single_workspace, 1)))


def emit_step_n(graph: Graph, plan: QuantPlan | None, base: CEmitter) -> StepN:
    """rnnedge_step_n for `graph`, after `base` (the single step's emitter) emitted its step."""
    em = BatchEmitter(base, batch_size(base.workspace))
    BatchProgram(graph, plan, em).emit()
    workspace = max(em.workspace + em.temp_max, 1)
    source = STEP_N.format(
        temp_at=em.workspace,
        body="\n".join(em.body),
        n_in=len(graph.inputs),
        n_out=len(graph.outputs),
        ni=max(len(graph.inputs), 1),
        no=max(len(graph.outputs), 1),
        workspace=workspace,
    )
    header = HEADER.format(batch=em.batch, workspace=workspace).splitlines()
    used = set(re.findall(r"\bk\d+\b", "\n".join(em.body))) - set(
        re.findall(r"\bk\d+\b", "\n".join(base.body))
    )
    decls = base.decls_of(used)
    return StepN(source=source, header=header, decls=decls, workspace=workspace)
