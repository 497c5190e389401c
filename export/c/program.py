"""Graph (+ QuantPlan) -> the C of one step: model.c and model.h.

The generated step reads float32 inputs and writes float32 outputs in the Graph's order
(data, then states), exactly as the other backends take them; the integer precisions
quantize at the boundary and dequantize outputs, as the numpy spec's `run` does. Every
intermediate tensor lives in one caller-provided workspace (RNNEDGE_WORKSPACE_BYTES, 64-byte
aligned), so one compiled model serves any number of streams and threads, with no malloc.
"""

from __future__ import annotations

import re

from rnnedge.errors import ExportError, GraphError
from rnnedge.export.c.batched import StepN, emit_step_n
from rnnedge.export.c.emitter import CEmitter, Tensor, c_string
from rnnedge.export.c.float_ops import FLOAT_KERNELS
from rnnedge.export.c.fused import FUSED, VECTOR_WIDTH
from rnnedge.export.c.gemm import GEMM
from rnnedge.export.c.int8 import INT, int8_kernel, quantize_to
from rnnedge.export.c.int8_dynamic import linear_dynamic
from rnnedge.export.c.panels import PANELS
from rnnedge.export.c.prelude import PRELUDE
from rnnedge.export.c.simd import GEMV
from rnnedge.export.c.walk import GraphWalk, output_value
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import INDEX_DTYPES, Graph, Node, validate
from rnnedge.runtime.quant.plan import QuantPlan
from rnnedge.version import __version__

# the kernels every generated file starts with, the same text in each (the float and int8
# files of a bundle differ in the rest: constants and the step functions)
C_HELPERS = "\n".join((PRELUDE, PANELS, GEMV, GEMM, FUSED, VECTOR_WIDTH))


def c_file_names(precision: str) -> tuple[str, str]:
    """The bundle's file names of the C of one precision: model.c / model.int8.c ..."""
    stem = "model" if precision == "float" else f"model.{precision}"
    return f"{stem}.c", f"{stem}.h"


def emit_c(graph: Graph, plan: QuantPlan | None = None) -> dict[str, bytes]:
    """The C source and header of one step of `graph` in float, or in the plan's precision;
    raises ExportError naming the op when an op has no C kernel."""
    precision = "float" if plan is None else plan.scheme
    try:
        validate(graph)
        shapes = infer_shapes(graph)
    except GraphError as e:
        raise ExportError(f"C export: {e}") from e
    _check_kernels(graph, precision)
    em = CEmitter(graph.constants)
    em.shapes = shapes
    header_name = c_file_names(precision)[1]
    try:
        _Program(graph, plan, em).emit()
        step_n = emit_step_n(graph, plan, em)
    except (ValueError, KeyError) as e:
        raise ExportError(f"C export ({precision}): {e}") from e
    source = _source(graph, em, precision, header_name, step_n)
    header = _header(graph, em, precision, step_n)
    c_name, h_name = c_file_names(precision)
    return {c_name: source.encode(), h_name: header.encode()}


def _check_kernels(graph: Graph, precision: str) -> None:
    known = set(FLOAT_KERNELS) | (set(INT) if precision == "int8" else set())
    for n in graph.nodes:
        if n.op not in known:
            where = f" (node producing {n.outputs[0]!r}" + (
                f" from {n.source})" if n.source else ")"
            )
            raise ExportError(f"C export: no C kernel for op {n.op!r}{where}")


class _Program(GraphWalk):
    def __init__(self, graph: Graph, plan: QuantPlan | None, em: CEmitter) -> None:
        super().__init__(graph, plan, em)
        self.dynamic = (
            {t.node: t for t in plan.quantized} if plan and plan.scheme == "int8-dynamic" else {}
        )

    def emit(self) -> None:
        em = self.em
        for i, t in enumerate(self.graph.inputs):
            em.comment(f"input {i}: {t.name} {list(t.shape)}")
            # a local copy of the pointer: int8 stores may alias in[] (char types alias
            # anything), and a loop that reloads in[i] per element does not vectorise
            ctype = f"{t.dtype}_t" if t.dtype in INDEX_DTYPES else "float"
            em.line(f"const {ctype} *const in_{i} = (const {ctype} *)in[{i}];")
            raw = Tensor(f"in_{i}", t.shape)
            q = self.params(t.name)
            self.tensors[t.name] = raw if q is None else quantize_to(em, raw, q)
        for node in self.graph.nodes:
            em.comment(
                f"{node.op} -> {node.outputs[0]}" + (f" ({node.source})" if node.source else "")
            )
            out = self._node(node)
            want = em.shapes[node.outputs[0]]
            if out.size != len_of(want):
                raise ValueError(f"{node.op} {node.outputs[0]!r}: {out.shape} != {want}")
            self.tensors[node.outputs[0]] = Tensor(out.var, tuple(want), out.q)
        for j, t in enumerate(self.graph.outputs):
            src = self.tensors[t.name]
            em.comment(f"output {j}: {t.name} {list(t.shape)}")
            em.line(f"for (int i = 0; i < {src.size}; i++) out[{j}][i] = {output_value(src)};")

    def _node(self, node: Node) -> Tensor:
        ins = [self.input(node, i) for i in range(len(node.inputs))]
        shape = self.em.shapes[node.outputs[0]]
        if node.outputs[0] in self.dynamic:
            w_t = self.dynamic[node.outputs[0]]
            if node.op != "linear" or node.inputs[1] != w_t.tensor:
                raise ValueError(f"quant.json: {w_t.tensor!r} is not the weight of a linear")
            return linear_dynamic(self.em, node, ins, w_t)
        if self.plan is not None and self.plan.scheme == "int8":
            return int8_kernel(self.em, node, ins, shape, self.plan)
        return FLOAT_KERNELS[node.op](self.em, node, ins, shape)


def len_of(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def c_names(graph: Graph) -> list[str]:
    """C parameter names for the inputs then outputs, from the tensor names, unique."""
    seen: set[str] = set()
    out = []
    for t in (*graph.inputs, *graph.outputs):
        base = re.sub(r"\W", "_", t.name) or "t"
        base = base if not base[0].isdigit() else "t_" + base
        name, i = base, 1
        while name in seen or name in ("in", "out", "ws", "workspace", "n"):
            name, i = f"{base}_{i}", i + 1
        seen.add(name)
        out.append(name)
    return out


def _source(graph: Graph, em: CEmitter, precision: str, header: str, step_n: StepN) -> str:
    n_in, n_out = len(graph.inputs), len(graph.outputs)
    sizes_in = ", ".join(str(len_of(t.shape)) for t in graph.inputs) or "0"
    sizes_out = ", ".join(str(len_of(t.shape)) for t in graph.outputs) or "0"
    items_in = ", ".join("8" if t.dtype == "int64" else "4" for t in graph.inputs) or "0"
    names = c_names(graph)
    params = [f"const float *{n}" for n in names[:n_in]] + [f"float *{n}" for n in names[n_in:]]
    parts = [
        f"/* Generated by rnnedge {__version__}: one step, precision {precision}. */",
        f'#include "{header}"',
        C_HELPERS,
        "const int rnnedge_input_sizes[] = {" + sizes_in + "};",
        "const int rnnedge_output_sizes[] = {" + sizes_out + "};",
        "const int rnnedge_input_itemsize[] = {" + items_in + "};",
        f"const long rnnedge_workspace_bytes = {em.workspace};",
        "",
        *em.used_decls(),
        *step_n.decls,
        "int rnnedge_step(const float *const *in, float *const *out, void *workspace)",
        "{",
        "    unsigned char *ws = (unsigned char *)workspace;",
        "    (void)ws; (void)in; (void)out;",
        *em.body,
        "    return 0;",
        "}",
        "",
        step_n.source,
        "",
        f"int rnnedge_step_io({', '.join([*params, 'void *workspace'])})",
        "{",
        f"    const float *ip[{max(n_in, 1)}] = {{{', '.join(names[:n_in]) or '0'}}};",
        f"    float *op[{max(n_out, 1)}] = {{{', '.join(names[n_in:]) or '0'}}};",
        "    return rnnedge_step(ip, op, workspace);",
        "}",
        "",
    ]
    return "\n".join(parts)


def _header(graph: Graph, em: CEmitter, precision: str, step_n: StepN) -> str:
    n_in, n_out = len(graph.inputs), len(graph.outputs)
    names = c_names(graph)
    params = [f"const float *{n}" for n in names[:n_in]] + [f"float *{n}" for n in names[n_in:]]
    states_in = {s.input for s in graph.states}
    states_out = {s.output for s in graph.states}
    lines = [
        f"/* Generated by rnnedge {__version__}: one step of the model, precision {precision}.",
        " * Inputs and outputs are float32, each one stream, in this order (an input of token",
        " * ids is passed as its own int32/int64 array; an id outside the table returns 1): */",
    ]
    for i, t in enumerate(graph.inputs):
        kind = "state in" if t.name in states_in else "data in"
        kind += f", {t.dtype} ids" if t.dtype in INDEX_DTYPES else ""
        lines.append(f"/*   in[{i}]  {c_string(t.name)} {list(t.shape)} ({kind}) */")
    for j, t in enumerate(graph.outputs):
        kind = "state out" if t.name in states_out else "data out"
        lines.append(f"/*   out[{j}] {c_string(t.name)} {list(t.shape)} ({kind}) */")
    guard = "RNNEDGE_MODEL_" + re.sub(r"\W", "_", precision).upper() + "_H"
    lines += [
        f"#ifndef {guard}",
        f"#define {guard}",
        f"#define RNNEDGE_N_INPUTS {n_in}",
        f"#define RNNEDGE_N_OUTPUTS {n_out}",
        f"#define RNNEDGE_N_STATES {len(graph.states)}",
        "/* bytes of scratch each call needs, 64-byte aligned; one per concurrent caller */",
        f"#define RNNEDGE_WORKSPACE_BYTES {max(em.workspace, 1)}",
        "extern const int rnnedge_input_sizes[];  /* floats per input, one stream */",
        "extern const int rnnedge_output_sizes[];",
        "extern const long rnnedge_workspace_bytes;",
        "extern const int rnnedge_input_itemsize[]; /* bytes per item: 8 for int64 ids */",
        "/* one step: returns 0 (1: a token id outside its table) */",
        "int rnnedge_step(const float *const *in, float *const *out, void *workspace);",
        *step_n.header,
        "/* one step, by name */",
        f"int rnnedge_step_io({', '.join([*params, 'void *workspace'])});",
        "#endif",
        "",
    ]
    return "\n".join(lines)
