"""ONNX lowering of precision "int8" (full integer), following the plan (quantize/int8.py)
and checked against its numpy spec (runtime/quant/int8.py) within 2 steps of each output.

Choices, each measured on onnxruntime 1.32 (x86-64 with AVX-512 VNNI, 1 thread, 2026-11):
  activations  uint8 with zero point plan_zp + 128: an exact re-encoding of the plan's int8
               integers (q_u8 = q_int8 + 128, same scale). MLAS runs u8 x s8 fast; int8 x s8
               QGemm / QLinearMatMul ran 5-60x SLOWER (a 512x2048 QLinearMatMul: 1,367 us
               s8s8, 25 us u8s8, 58 us float Gemm). Weights stay int8 (quantize_weight).
  linear       no bias: QLinearMatMul (u8 x s8 per-column scales -> u8), one node.
               bias: MatMulInteger -> Add int32 bias -> Cast -> QuantizeLinear with the
               per-channel scale y_s / (x_s w_s[n]): the int32 sum is exact (as the spec's), only
               the final requantisation rounds in float. com.microsoft QGemm does the same in one
               node but its per-column requantisation was slower (32 vs 25 us at 512x2048,
               8.4 vs 7.9 us at 128x384, session overhead included) and it takes only 2-D A.
  add, sub     com.microsoft QLinearAdd; sub is QLinearAdd with b's scale negated (checked
               on all 65,536 u8 pairs: identical to an exact a - b rounded, as add is).
  mul          com.microsoft QLinearMul.
  sigmoid, tanh  com.microsoft QLinearSigmoid (one MLAS lookup kernel; Cast + Gather cost 6-16
               us at N=1024), tanh as 2 sigmoid(2x) - 1 at tanh's fixed output parameters; its
               table equals the spec's on all 256 entries. Otherwise (and relu, requantize):
               Cast(u8 -> int32) + Gather from a 256-entry table built with the spec's rule.
  reshape, slice, concat, transpose the float lowerings (float_ops.py) on integer tensors.
  int16 (the LSTM cell)    onnxruntime has no int16 QLinear kernels. Each op touching int16
               runs as DequantizeLinear -> float op -> QuantizeLinear (com.microsoft's, which
               take int16). For the cell this is exact up to ties: f*c, i*g and their sum are
               small integers times powers of two, which float32 holds exactly, so only the
               final rounding (half to even here, TFLite's double rounding in the spec) can
               differ, by one int16 step. Exact int32 arithmetic (the rescales are powers of
               two) would need ~8 integer nodes per rounding (sign, bias, divide, clamp), about
               35 extra nodes per layer at ~0.3 us each, for the same result within 1 int16 step.
  float islands   DequantizeLinear -> float_ops.LOWERINGS -> QuantizeLinear, as the spec.
  boundary     float32 inputs and states in, QuantizeLinear; outputs and states DequantizeLinear
               back to float32: same names, shapes and symbolic batch axis as the float file.
onnxruntime's QLinear* and (de)quantisation round in float32, half to even, as the spec's
int8 kernels do (it follows XNNPACK, LiteRT's default delegate, which rounds so too): measured
0-1 steps apart per step, 2 at most (tests/export/test_emit_onnx_int8.py, test_int8_export.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto, numpy_helper

from rnnedge.export.onnx.float_ops import LOWERINGS, Lowering, unsupported
from rnnedge.export.onnx.int8_bias import bias_input
from rnnedge.export.onnx.int8_weight_only import weight_only_linear
from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.ops import sigmoid
from rnnedge.runtime.quant.fixed import lookup_table, requantize_fn
from rnnedge.runtime.quant.int8 import dequantize, quantize
from rnnedge.runtime.quant.plan import (
    SHAPE_OPS,
    QParams,
    QuantPlan,
    quantize_bias,
    quantize_weight,
)

if TYPE_CHECKING:
    from rnnedge.export.onnx.emitter import OnnxEmitter

MS = "com.microsoft"
F32 = np.float32
LUT_OPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"sigmoid": sigmoid, "tanh": np.tanh}
# How the file holds each integer dtype of the plan: int8 as uint8 with the zero point moved
# up by 128 (see the module docstring), int16 as it is. The names go into tensor names.
KINDS = {"int8": "u8", "int16": "i16"}
U8_SHIFT = 128


def _file_zp(p: QParams) -> int:
    """The zero point as the file stores it (uint8 for an int8 tensor)."""
    return p.zp + U8_SHIFT if p.dtype == "int8" else p.zp


def _encoded(value: np.ndarray, p: QParams) -> np.ndarray:
    """The spec's QUANTIZE of a constant (half away from zero, clamped), in the file's type."""
    q = quantize(value, p)
    return (q + U8_SHIFT).astype(np.uint8) if p.dtype == "int8" else q.astype(np.int16)


class Int8Lowering:
    """The lowerings of one emit_onnx call at precision "int8": `enter` quantizes the graph
    inputs, `lowerings` lowers each node, `leave` dequantizes the graph outputs."""

    def __init__(self, graph: Graph, plan: QuantPlan, em: OnnxEmitter) -> None:
        self.graph, self.plan, self.em = graph, plan, em
        self.params: dict[str, QParams | None] = {}
        for name in [t.name for t in graph.inputs] + [n.outputs[0] for n in graph.nodes]:
            if plan.activation(name) is None:
                raise unsupported(_producer(graph, name), f"quant.json has no entry for {name!r}")
            self.params[name] = self._held(name, plan.params(name))
        self.outputs = {t.name for t in graph.outputs}
        self._float: dict[str, str] = {}  # tensor -> its DequantizeLinear output
        self._scalars: dict[tuple[str, bytes], str] = {}

    # --- parameters and initializers -----------------------------------------------------

    def _held(self, name: str, p: QParams | None) -> QParams | None:
        if p is not None and p.dtype not in KINDS:
            raise unsupported(_producer(self.graph, name), f"dtype {p.dtype}")
        return p

    def params_of(self, name: str) -> QParams | None:
        """The parameters `name` is read with: an activation's, or a quantized constant's."""
        if name not in self.graph.constants:
            return self.params[name]
        return self._held(name, self.plan.params(name))

    def _scalar(self, value: np.generic) -> str:
        """A 0-d initializer (QLinear* and Q/DQ want scalar parameters; em.derived and em.f32
        make 1-element vectors)."""
        key = (value.dtype.str, value.tobytes())
        if key not in self._scalars:
            name = self.em.short_name()
            self.em.initializers[name] = numpy_helper.from_array(np.array(value), name)
            self._scalars[key] = name
        return self._scalars[key]

    def _scale(self, p: QParams, sign: int = 1) -> str:
        return self._scalar(F32(sign * p.scale))  # short names (em.short_name): every
        # QLinear node lists six of them, a visible share of a small model's file

    def _zp(self, p: QParams) -> str:
        value = np.uint8(_file_zp(p)) if p.dtype == "int8" else np.int16(p.zp)
        return self._scalar(value)

    def _value(self, name: str) -> str:
        """A tensor read by an integer op: a quantized constant becomes an initializer."""
        p = self.params_of(name)
        if name in self.graph.constants and p is not None:
            value = self.graph.constants[name]
            hint = f"{name}.{KINDS[p.dtype]}"
            return self.em.derived(("q", name, p), hint, lambda: _encoded(value, p))
        return name

    def qdq(self, op: str, x: str, p: QParams, out: str | None = None) -> str:
        domain = {"domain": MS} if p.dtype == "int16" else {}  # int16: com.microsoft's Q/DQ
        return self.em.add(op, [x, self._scale(p), self._zp(p)], out, **domain)

    # --- boundary ------------------------------------------------------------------------

    def enter(self) -> None:
        for t in self.graph.inputs:
            p = self.params[t.name]
            if p is not None:
                self.em.begin(Node(op="quantize", inputs=(), outputs=(t.name,)))
                self.em.alias(t.name, self.qdq("QuantizeLinear", t.name, p))

    def leave(self) -> None:
        self.em.source = ""
        for t in self.graph.outputs:
            p = self.params.get(t.name)
            src = self.em.resolve(t.name)
            if p is not None:
                self.qdq("DequantizeLinear", src, p, t.name)
            elif src != t.name:
                self.em.add("Identity", [src], t.name)

    # --- nodes ---------------------------------------------------------------------------

    def lowerings(self) -> dict[str, Lowering]:
        return {op: self.lower for op in LOWERINGS}

    def lower(self, em: OnnxEmitter, node: Node) -> None:
        """Dispatch as the spec's Int8Executor._compile does."""
        out = self.params[node.outputs[0]]
        ins = [self.params_of(i) for i in node.inputs]
        if node.op == "gather" and self.plan.weight(node.outputs[0]) is not None:
            self._emit(node, self._embedding)
        elif node.op == "linear" and _int8(out, ins[0]):
            self._emit(node, self._linear)
        elif node.op == "linear" and self.plan.weight(node.outputs[0]) is not None:
            self._emit(node, lambda node, out: weight_only_linear(self, node, out))
        elif out is None or any(p is None for p in ins) or not self._integer(node, ins, out):
            self._emit(node, self._float_island)
        elif node.op in SHAPE_OPS:
            self._emit(node, self._shape)
        elif node.op in ("add", "sub", "mul"):
            self._emit(node, self._elementwise)
        else:
            self._emit(node, self._lut)

    def _integer(self, node: Node, ins: list[QParams | None], out: QParams) -> bool:
        """Whether an integer kernel here runs the node (else: through float)."""
        if node.op in SHAPE_OPS:  # int16 shape ops too, when no input needs requantizing
            return all(p is not None and p.dtype == out.dtype for p in ins) and (
                out.dtype == "int8" or all(p == out for p in ins)
            )
        return node.op in ("add", "sub", "mul", "sigmoid", "tanh", "relu") and _int8(out, *ins)

    def _emit(self, node: Node, fn: Callable[[Node, str], None]) -> None:
        """Runs `fn(node, out)`; a graph output is written under a fresh name (the graph's
        name is its float32 DequantizeLinear, written by `leave`) and aliased afterwards."""
        name = node.outputs[0]
        if name in self.outputs and self.params[name] is not None:
            fresh = self.em.fresh(f"{name}.q")
            fn(node, fresh)
            self.em.alias(name, fresh)
        else:
            fn(node, name)

    def _linear(self, node: Node, out: str) -> None:
        x, w, *bias = node.inputs
        xp, yp = self.params_of(x), self.params[node.outputs[0]]
        assert xp is not None and yp is not None
        wt = self.plan.weight(node.outputs[0])
        value = self.em.const(w)
        if wt is None or wt.tensor != w or value is None or value.ndim != 2:
            raise unsupported(node, f"quant.json has no int8 weight for {w!r}")
        if len(wt.scale) != value.shape[0]:
            raise unsupported(node, f"quant.json does not fit weight {w!r}")
        em = self.em
        w_scale = np.asarray(wt.scale, F32)
        w_q = em.derived(("int8", w), f"{w}.int8", lambda: quantize_weight(value, wt.scale).T)
        w_zp = self._scalar(np.int8(0))  # symmetric weights: one scalar zero point
        if not bias:
            ws = self.weight_scale(w, w_scale)
            ins = [x, self._scale(xp), self._zp(xp), w_q, ws, w_zp, self._scale(yp), self._zp(yp)]
            em.add("QLinearMatMul", ins, out)
            return
        b_int = bias_input(em, bias[0], lambda: self._bias(node))
        acc = em.add("MatMulInteger", [x, w_q, self._zp(xp), w_zp])
        acc = em.add("Cast", [em.add("Add", [acc, b_int])], to=TensorProto.FLOAT)
        # y = round(acc x_s w_s[n] / y_s) + y_zp: a per-channel Mul, then a per-tensor
        # QuantizeLinear (per-axis QuantizeLinear runs a scalar loop: 13-23 us at N=1024).
        # The multiplier is x_s * w_s / y_s in float32, computed from the scales by nodes
        # onnxruntime folds at load: the file holds w_s in 2 bytes (quantize/int8.py keeps
        # them float16 values), not a 4-byte multiplier per channel (issue 16)
        ws = self.weight_scale(w, w_scale)
        step = em.add("Div", [em.add("Mul", [self._scale(xp), ws]), self._scale(yp)])
        one = QParams("int8", 1.0, yp.zp)
        em.add("QuantizeLinear", [em.add("Mul", [acc, step]), self._scale(one), self._zp(one)], out)

    def weight_scale(self, w: str, scale: np.ndarray) -> str:
        """The float32 [N] weight scales of `w`: a float16 initializer widened by Cast when
        float16 holds every one exactly (the plan's are so, quantize/int8.py), else float32."""
        with np.errstate(over="ignore"):
            half = scale.astype(np.float16)
        if not np.array_equal(half.astype(F32), scale):
            return self.em.derived(("scale", w), f"{w}.scale", lambda: scale)
        stored = self.em.derived(("scale16", w), f"{w}.scale", lambda: half)
        return self.em.add("Cast", [stored], to=TensorProto.FLOAT)

    def _embedding(self, node: Node, out: str) -> None:
        # an embedding with a per-row int8 table, as the spec's Int8Executor._gather: Gather
        # the int8 rows and their scales by the ids, Cast + Mul in float32, QuantizeLinear
        (table, ids), yp = node.inputs, self.params[node.outputs[0]]
        t, value, em = self.plan.weight(node.outputs[0]), self.em.const(table), self.em
        if t is None or value is None or value.ndim != 2 or len(t.scale) != len(value):
            raise unsupported(node, f"quant.json has no int8 table for {table!r}")
        q = em.derived(("int8", table), f"{table}.int8", lambda: quantize_weight(value, t.scale))
        col = em.derived(
            ("rows", table), f"{table}.scale", lambda: np.asarray(t.scale, F32)[:, None]
        )
        rows = em.add("Cast", [em.add("Gather", [q, ids], axis=0)], to=TensorProto.FLOAT)
        y = em.add("Mul", [rows, em.add("Gather", [col, ids], axis=0)], None if yp else out)
        if yp is not None:  # else weight-only: the float rows are the output
            self.qdq("QuantizeLinear", y, yp, out)

    def _bias(self, node: Node) -> np.ndarray:
        b_t = self.plan.bias(node.inputs[2])
        if b_t is None:
            raise unsupported(node, f"quant.json has no int32 bias {node.inputs[2]!r}")
        return quantize_bias(self.graph.constants[node.inputs[2]], b_t.scale).astype(np.int32)

    def _elementwise(self, node: Node, out: str) -> None:
        (a, b), y = node.inputs, self.params[node.outputs[0]]
        ap, bp = self.params_of(a), self.params_of(b)
        assert ap is not None and bp is not None and y is not None
        b_scale = self._scale(bp, -1 if node.op == "sub" else 1)
        op = "QLinearMul" if node.op == "mul" else "QLinearAdd"
        ins = [self._value(a), self._scale(ap), self._zp(ap), self._value(b), b_scale]
        ins += [self._zp(bp), self._scale(y), self._zp(y)]
        self.em.add(op, ins, out, domain=MS)

    def _lut(self, node: Node, out: str) -> None:
        x = node.inputs[0]
        p, r = self.params_of(x), self.params[node.outputs[0]]
        assert p is not None and r is not None
        sig = as_sigmoid(node.op, p, r)
        if sig is not None:  # one MLAS lookup kernel; Cast + Gather cost 6-16 us at N=1024
            p2, r2 = sig
            ins = [self._value(x), self._scale(p2), self._zp(p2), self._scale(r2), self._zp(r2)]
            self.em.add("QLinearSigmoid", ins, out, domain=MS)
            return
        key = (node.op, p, r)
        table = self.em.derived(key, f"{node.op}.lut", lambda: _table(node.op, p, r))
        self._gather(self._value(x), table, out)

    def _gather(self, x: str, table: str, out: str | None) -> str:
        idx = self.em.add("Cast", [x], to=TensorProto.INT32)  # Gather takes int32/int64 only
        return self.em.add("Gather", [table, idx], out)

    def _shape(self, node: Node, out: str) -> None:
        r = self.params[node.outputs[0]]
        assert r is not None
        ins = []
        for i in node.inputs:
            p = self.params_of(i)
            if p != r:  # only int8 gets here with differing parameters (see _integer)
                assert p is not None
                table = self.em.derived(
                    ("requant", p, r), "requant.lut", lambda p=p: _table("", p, r)
                )
                ins.append(self._gather(self._value(i), table, None))
            else:
                ins.append(self._value(i))
        self._lower_as(node, ins, out)

    def _float_island(self, node: Node, out: str) -> None:
        """DequantizeLinear -> the float lowering -> QuantizeLinear (spec: Int8Executor._float)."""
        ins = [self.dequantized(i) for i in node.inputs]
        r = self.params[node.outputs[0]]
        if r is None:
            self._lower_as(node, ins, out)
            return
        y = self.em.fresh(f"{node.outputs[0]}.f")
        self.em.shapes[y] = self.em.shape(node.outputs[0])
        self._lower_as(node, ins, y)
        self.qdq("QuantizeLinear", y, r, out)

    def dequantized(self, name: str) -> str:
        p = self.params_of(name)
        if p is None:
            return name
        if name in self.graph.constants:  # the spec runs float ops on the quantized constant
            value = self.graph.constants[name]
            return self.em.derived(
                ("dq", name, p), f"{name}.dq", lambda: dequantize(quantize(value, p), p)
            )
        if name not in self._float:
            self._float[name] = self.qdq("DequantizeLinear", name, p)
            self.em.shapes[self._float[name]] = self.em.shape(name)
        return self._float[name]

    def _lower_as(self, node: Node, ins: list[str], out: str) -> None:
        """The float lowering of `node`, reading `ins` and writing `out` (any dtype: the
        shape ops and float ops of float_ops.py do not depend on it)."""
        for new, old in zip(ins, node.inputs):
            self.em.shapes.setdefault(new, self.em.shape(old))
        self.em.shapes.setdefault(out, self.em.shape(node.outputs[0]))
        renamed = Node(
            op=node.op, inputs=tuple(ins), outputs=(out,), attrs=node.attrs, source=node.source
        )
        LOWERINGS[node.op](self.em, renamed)


def _int8(*params: QParams | None) -> bool:
    return all(p is not None and p.dtype == "int8" for p in params)


def as_sigmoid(op: str, p: QParams, r: QParams) -> tuple[QParams, QParams] | None:
    """(input, output) parameters of a QLinearSigmoid computing `op`, if one can. tanh(x) =
    2 sigmoid(2x) - 1, so tanh at output scale s (1/s an integer) is sigmoid read at twice
    the input scale, written at scale s/2 with the zero point moved down by 1/s."""
    if op == "sigmoid":
        return p, r
    inv = 1 / r.scale
    if op != "tanh" or inv != round(inv) or not -128 <= r.zp - round(inv) <= 127:
        return None
    return QParams("int8", 2 * p.scale, p.zp), QParams("int8", r.scale / 2, r.zp - round(inv))


def _table(op: str, p: QParams, r: QParams) -> np.ndarray:
    """u8 -> u8 table of the spec's kernel: sigmoid / tanh (lookup_table), relu and plain
    requantisation (requantize_fn, TFLite's fixed-point multiplier); index = q_int8 + 128."""
    if op in LUT_OPS:
        t = lookup_table(LUT_OPS[op], p.scale, p.zp, r.scale, r.zp)
        return (t + U8_SHIFT).astype(np.uint8)
    q = np.arange(-128, 128, dtype=np.int64)
    f = requantize_fn(float(F32(p.scale)) / float(F32(r.scale)))
    lo = max(-128, r.zp) if op == "relu" else -128
    return (np.clip(f(q - p.zp) + r.zp, lo, 127) + U8_SHIFT).astype(np.uint8)


def _producer(graph: Graph, name: str) -> Node:
    for n in graph.nodes:
        if name in n.outputs:
            return n
    return Node(op="input", inputs=(), outputs=(name,))
