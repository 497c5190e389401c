"""Precision "int8-dynamic" in C: the float step with every planned linear replaced by the
numpy spec's linear_int8_dynamic (runtime/quant/int8_dynamic.py): x quantized per call to
uint8 (ONNX DynamicQuantizeLinear over the whole tensor), an int32 dot product with the int8
weights, scaled back to float by x_scale * w_scale[n] (float32), plus the float bias."""

from __future__ import annotations

import numpy as np

from rnnedge.export.c.emitter import CEmitter, Tensor
from rnnedge.runtime.graph import Node
from rnnedge.runtime.quant.plan import TensorQuant, quantize_weight


def linear_dynamic(em: CEmitter, node: Node, ins: list[Tensor], w_t: TensorQuant) -> Tensor:
    x = ins[0]
    w = em.constants[w_t.tensor]
    n_out, k_in = w.shape
    rows = x.size // max(k_in, 1)
    wq = em.const(quantize_weight(w, w_t.scale), "int8_t", "w_q [N][K]")
    ws = em.const(np.asarray(w_t.scale, np.float32), "float", "w scale")
    y = em.scratch((*x.shape[:-1], n_out))
    xq = em.scratch(x.shape, ctype="int16_t")
    bias = f" + {ins[2].var}[n]" if len(ins) == 3 else ""
    em.line("{")
    em.line("    float lo = 0.0f, hi = 0.0f, sc; int zp = 0;")
    em.line(f"    for (int i = 0; i < {x.size}; i++) {{")
    em.line(f"        lo = {x.var}[i] < lo ? {x.var}[i] : lo;")
    em.line(f"        hi = {x.var}[i] > hi ? {x.var}[i] : hi;")
    em.line("    }")
    em.line("    sc = (hi - lo) / 255.0f;")
    em.line(f"    if (sc == 0.0f) for (int i = 0; i < {x.size}; i++) {xq.var}[i] = 0;")
    em.line("    else {")
    em.line("        zp = (int)rq_clamp(rq_rint(-lo / sc), 0, 255);")
    em.line(f"        for (int i = 0; i < {x.size}; i++)")
    q = f"rq_clamp(rq_rint({x.var}[i] / sc) + zp, 0, 255)"
    em.line(f"            {xq.var}[i] = (int16_t)({q} - zp);")
    em.line("    }")
    em.line(f"    for (int m = 0; m < {rows}; m++) {{")
    em.line(f"        for (int n = 0; n < {n_out}; n++) {{")
    dot = f"rq_dot({xq.var} + m * {k_in}, {wq} + n * {k_in}, {k_in})"
    em.line(f"            const int32_t acc = {dot};")
    em.line(f"            {y.var}[m * {n_out} + n] = (float)acc * (sc * {ws}[n]){bias};")
    em.line("        }")
    em.line("    }")
    em.line("}")
    return y
