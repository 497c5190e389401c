"""The numpy reference of precision "int8" (full integer): the arithmetic the deployed int8
kernels do, op by op, so the TFLite and ONNX int8 files can be checked against it.

Every tensor of the plan holds integers (int8, int16 for an LSTM cell state) or, where the
plan says so, float32. Two families of kernels run the files, and they round differently:
  int8 ops (linear, add, sub, mul)  LiteRT's default XNNPACK delegate and onnxruntime's
           QLinear / MatMulInteger kernels requantize in float32: y = rint(acc * s) + y_zp,
           s the float32 product/quotient of the scales, rint half to even ("fp32"
           requantization). The spec does the same, and equals both: measured 0 steps apart
           from LiteRT over 1,000 steps on GRU / RNN, <= 1 from onnxruntime (its sub runs
           as an add with a negated scale). With rounding="tflite" they run in TFLite's
           builtin kernels' fixed point instead (int8_fixed.py), as LiteRT without the
           XNNPACK delegate and on arm64 does (tests/export/test_tflite_fixed_point.py).
             linear  acc = (x - x_zp) @ w_q^T + b_q (int32), s = x_s w_s[n] / y_s per channel
             add/sub y = rint((a - a_zp) a_s / y_s +- (b - b_zp) b_s / y_s) + y_zp
             mul     y = rint((a - a_zp)(b - b_zp) a_s b_s / y_s) + y_zp
  int16 ops (the LSTM cell)  XNNPACK has no int16 kernels, so LiteRT runs TFLite's builtin
           ones, in fixed point (fixed.py): add/sub as reference/integer_ops/add.h
           (inputs shifted left by 15, scaled by s_i / (2 max(s1, s2)), summed, scaled to
           the output), mul as MulElementwise MBQM((a - a_zp)(b - b_zp), a_s b_s / y_s); an
           int8 input is first widened to int16, (q - zp) * 128 at scale / 128, exactly, as
           the TFLite file must (its kernels take one input type).
  sigmoid, tanh   a lookup table per node, built as TFLite's LUTPopulate (fixed.py)
  relu     activations.cc ReluX: MBQM(x - x_zp, x_scale / y_scale) + y_zp, clamped at y_zp
  reshape, slice, transpose  the integers unchanged (one set of parameters in and out)
  concat   inputs whose parameters differ from the output's are requantized first
A linear whose activations the plan keeps float but whose weight it stores int8 ("weight-only
int8", quantize/weight_only.py) runs float with the weight w_q * s (exact in float32); an
embedding's int8 rows are dequantized likewise, its output float or quantized.
A node whose output the plan keeps float runs the float op on dequantized inputs; an integer
output computed from a float input runs float and is quantized (a float island ending in
QUANTIZE). Graph inputs are quantized and outputs dequantized at the boundary.

States: `step(feeds, qstate)` takes and returns the states as integers (the deployed form:
an int8 h is fed straight back, never through float), `initial_qstate()` gives the quantized
initial values. `run(feeds)` is the float convenience: float states in and out; exact,
because a state's input and output share one set of parameters, so dequantizing and
quantizing again returns the same integers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from rnnedge.errors import GraphError
from rnnedge.runtime.executor import Step, run_steps
from rnnedge.runtime.graph import Graph, Node, validate
from rnnedge.runtime.ops import OPS, sigmoid
from rnnedge.runtime.quant.fixed import (
    fp32_requantize_fn,
    lookup_table,
    requantize_fn,
    round_away,
)
from rnnedge.runtime.quant.int8_fixed import fixed_add_sub, fixed_mul, linear_requantize
from rnnedge.runtime.quant.plan import (
    SHAPE_OPS,
    QParams,
    QuantPlan,
    quantize_bias,
    quantize_weight,
    weight_only_matrix,
)

F32 = np.float32
I64 = np.int64
Kernel = Callable[..., np.ndarray]
# "fp32": int8 ops requantize in float32 (XNNPACK on x86, onnxruntime); "tflite": in TFLite's
# fixed point (its builtin kernels, and LiteRT on arm64): int8_fixed.py
ROUNDINGS = ("fp32", "tflite")


def quantize(x: np.ndarray, p: QParams) -> np.ndarray:
    # TFLite QUANTIZE (reference/quantize.h): round(x / scale) + zp, TfLiteRound, clamped;
    # clamped in float first, so a value past int64 (a 1e30 sentinel) saturates, not wraps;
    # and after, for NaN (as before: the lowest value)
    r = np.clip(round_away(np.asarray(x, F32) / F32(p.scale)), p.lo - p.zp, p.hi - p.zp)
    return np.clip(r.astype(I64) + p.zp, p.lo, p.hi)


def dequantize(q: np.ndarray, p: QParams) -> np.ndarray:
    return (F32(p.scale) * (np.asarray(q, I64) - p.zp).astype(F32)).astype(F32)


class Int8Executor:
    """Compiles a Graph and its "int8" plan into integer kernels and runs steps."""

    def __init__(self, graph: Graph, plan: QuantPlan, rounding: str = "fp32") -> None:
        if plan.scheme != "int8":
            raise GraphError(f"Int8Executor needs an 'int8' plan, got {plan.scheme!r}")
        if rounding not in ROUNDINGS:
            raise GraphError(f"Int8Executor: rounding {rounding!r} is not one of {ROUNDINGS}")
        self.rounding = rounding
        validate(graph)
        self.graph, self.plan = graph, plan
        self.params: dict[str, QParams | None] = {}
        for name in [t.name for t in graph.inputs] + [n.outputs[0] for n in graph.nodes]:
            if plan.activation(name) is None:
                raise GraphError(f"quant.json: no parameters for tensor {name!r}")
            self.params[name] = plan.params(name)
        self.consts: dict[str, np.ndarray] = {}
        self._steps = [
            Step(self._compile(n), n.inputs, n.outputs[0], {}, n.op) for n in graph.nodes
        ]

    # --- running ------------------------------------------------------------------------

    def initial_qstate(self) -> dict[str, np.ndarray]:
        return self._to_q({s.input: self.graph.constants[s.init] for s in self.graph.states})

    def step(
        self, feeds: Mapping[str, np.ndarray], qstate: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Float data inputs + integer states -> (float data outputs, integer states)."""
        values = dict(self.consts)
        values.update(self._to_q(feeds))
        values.update(qstate)
        run_steps(self._steps, values)
        outs = {t.name: self._to_f(t.name, values[t.name]) for t in self.graph.data_outputs}
        return outs, {s.input: values[s.output] for s in self.graph.states}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every graph input as float -> every graph output as float (states dequantized)."""
        states = set(self.graph.state_inputs)
        qstate = self._to_q({k: v for k, v in feeds.items() if k in states})
        outs, new = self.step({k: v for k, v in feeds.items() if k not in states}, qstate)
        for s in self.graph.states:
            outs[s.output] = self._to_f(s.input, new[s.input])
        return outs

    def _to_q(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for k, v in feeds.items():
            p, arr = self.params[k], np.asarray(v)
            if p is None:  # float, or token ids kept as the integers they are
                out[k] = arr if arr.dtype.kind in "iu" else arr.astype(F32)
            else:
                out[k] = quantize(v, p)
        return out

    def _to_f(self, name: str, v: np.ndarray) -> np.ndarray:
        p = self.params[name]
        return v if p is None else dequantize(v, p)

    # --- compiling ----------------------------------------------------------------------

    def _compile(self, node: Node) -> Kernel:
        out = self.params[node.outputs[0]]
        ins = [self._input_params(node, i) for i in node.inputs]
        if node.op == "gather" and self.plan.weight(node.outputs[0]) is not None:
            return self._gather(node, out)
        if node.op == "linear" and out is not None and ins[0] is not None:
            return self._linear(node, ins[0], out)
        if node.op == "linear" and self.plan.weight(node.outputs[0]) is not None:
            return self._weight_only(node, ins, out)
        if out is None or node.op not in _INT or any(p is None for p in ins):
            return self._float(node, ins, out)
        if node.op in ("add", "sub", "mul") and out.dtype == "int16":
            return _widened(node, ins, out)
        if node.op in _FIXED and self.rounding == "tflite":
            return _FIXED[node.op](node, ins, out)
        return _INT[node.op](node, ins, out)

    def _gather(self, node: Node, out: QParams | None) -> Kernel:
        """An embedding: the int8 rows of a per-row table, each times its row's scale in
        float32 (exact: one rounding, as the files' Cast + Mul), quantized to the output."""
        t = self.plan.weight(node.outputs[0])
        table = self.graph.constants[node.inputs[0]]
        if t is None or t.tensor != node.inputs[0] or table.ndim != 2:
            raise GraphError(f"quant.json: no int8 table for gather {node.outputs[0]!r}")
        self.consts[t.tensor] = quantize_weight(table, t.scale)
        scale = np.asarray(t.scale, F32)[:, None]

        def kernel(q: np.ndarray, ids: np.ndarray) -> np.ndarray:
            y = OPS["gather"].fn(q, ids).astype(F32) * scale[ids]
            return y if out is None else quantize(y, out)

        return kernel

    def _weight_only(self, node: Node, ins: list[QParams | None], out: QParams | None) -> Kernel:
        """Weight-only int8 (quantize/weight_only.py): the float linear, on the dequantized
        input, with the weight w_q * s[n] (exact in float32); its output quantized if int8."""
        t = self.plan.weight(node.outputs[0])
        if t is None or t.tensor != node.inputs[1]:
            raise GraphError(f"quant.json: no int8 weight for linear {node.outputs[0]!r}")
        w = weight_only_matrix(self.graph.constants[t.tensor], t.scale)
        inner = self._float(node, ins, out)
        return lambda x, _w, *bias: inner(x, w, *bias)

    def _input_params(self, node: Node, name: str) -> QParams | None:
        if name not in self.graph.constants:
            return self.params[name]
        p = self.plan.params(name)
        if p is not None:
            self.consts[name] = quantize(self.graph.constants[name], p)
        else:
            self.consts[name] = self.graph.constants[name]
        return p

    def _float(self, node: Node, ins: list[QParams | None], out: QParams | None) -> Kernel:
        fn = OPS[node.op].fn
        attrs = dict(node.attrs)

        def kernel(*xs: np.ndarray) -> np.ndarray:
            fs = [x if p is None else dequantize(x, p) for x, p in zip(xs, ins)]
            y = np.asarray(fn(*fs, **attrs), F32)
            return y if out is None else quantize(y, out)

        return kernel

    def _linear(self, node: Node, x: QParams, out: QParams) -> Kernel:
        w_t = self.plan.weight(node.outputs[0])
        if w_t is None or w_t.tensor != node.inputs[1]:
            raise GraphError(f"quant.json: no int8 weight for linear {node.outputs[0]!r}")
        w = self.graph.constants[w_t.tensor]
        w_scale = np.asarray(w_t.scale, np.float64)
        # the one weight and bias rounding every int8 file uses (plan.py)
        w_q = quantize_weight(w, w_t.scale).astype(I64)
        bias = np.zeros(w.shape[0], I64)
        if len(node.inputs) == 3:
            b_t = self.plan.bias(node.inputs[2])
            if b_t is None:
                raise GraphError(f"quant.json: no int32 bias for linear {node.outputs[0]!r}")
            bias = quantize_bias(self.graph.constants[node.inputs[2]], b_t.scale)
        if self.rounding == "tflite":
            requant = linear_requantize(x, w_scale, out)
        else:  # per-channel scale in float32, as XNNPACK's qc8 GEMM computes it
            f32_w = w_scale.astype(F32).astype(np.float64)
            requant = fp32_requantize_fn(float(F32(x.scale)) * f32_w / float(F32(out.scale)))
        # The int32 accumulation runs as a float64 matmul (BLAS; numpy's integer matmul is
        # not): every product and partial sum is an integer below 255 * 127 * K < 2^53, so
        # float64 holds each exactly and the result equals the int32 sum bit for bit.
        wt = np.ascontiguousarray(w_q.T, np.float64)

        def kernel(xq: np.ndarray, *_consts: np.ndarray) -> np.ndarray:
            acc = ((xq - x.zp).astype(np.float64) @ wt).astype(I64) + bias
            return np.clip(requant(acc) + out.zp, out.lo, out.hi)

        return kernel


def _requant(p: QParams, to: QParams) -> Callable[[np.ndarray], np.ndarray]:
    """Integers at p -> integers at `to` (TFLite REQUANTIZE / int8->int8 QUANTIZE)."""
    if p == to:
        return lambda q: q
    f = requantize_fn(float(F32(p.scale)) / float(F32(to.scale)))
    return lambda q: np.clip(f(np.asarray(q, I64) - p.zp) + to.zp, to.lo, to.hi)


def widen(p: QParams) -> QParams:
    """The int16 twin of int8 parameters: (q - zp) * 128 at scale / 128, zero point 0."""
    return p if p.dtype == "int16" else QParams("int16", float(F32(p.scale)) / 128, 0)


def _widened(node: Node, ins: list[QParams], out: QParams) -> Kernel:
    """An int16 add/sub/mul: TFLite's kernels take one input type, so the TFLite file widens
    each int8 input by QUANTIZE int8 -> int16 first ((q - zp) * 128, exact); so does this."""
    wide = [widen(p) for p in ins]
    fixes = [_requant(p, w) for p, w in zip(ins, wide)]
    inner = _INT[node.op](node, wide, out)
    return lambda *xs: inner(*(f(x) for f, x in zip(fixes, xs)))


def _add_sub(sign: int) -> Callable[[Node, list, QParams], Kernel]:
    def make(node: Node, ins: list[QParams], out: QParams) -> Kernel:
        if out.dtype == "int16":
            return fixed_add_sub(sign, ins, out)
        a, b = ins
        ra, rb = (F32(F32(p.scale) / F32(out.scale)) for p in ins)

        def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            # not `v +=`: either operand may be the one that broadcasts (1 - sigmoid(v))
            v = (x.astype(I64) - a.zp).astype(F32) * ra
            v = v + F32(sign) * ((y.astype(I64) - b.zp).astype(F32) * rb)
            return np.clip(np.rint(v).astype(I64) + out.zp, out.lo, out.hi)

        return kernel

    return make


def _mul(node: Node, ins: list[QParams], out: QParams) -> Kernel:
    a, b = ins
    real = float(F32(a.scale)) * float(F32(b.scale)) / float(F32(out.scale))
    f = requantize_fn(real) if out.dtype == "int16" else fp32_requantize_fn(real)

    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        prod = (x.astype(I64) - a.zp) * (y.astype(I64) - b.zp)
        return np.clip(f(prod) + out.zp, out.lo, out.hi)

    return kernel


def _lut(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Node, list, QParams], Kernel]:
    def make(node: Node, ins: list[QParams], out: QParams) -> Kernel:
        p = ins[0]
        table = lookup_table(fn, p.scale, p.zp, out.scale, out.zp, p.dtype, out.dtype)
        return lambda x: table[x.astype(I64) - p.lo]

    return make


def _relu(node: Node, ins: list[QParams], out: QParams) -> Kernel:
    p = ins[0]
    f = requantize_fn(float(F32(p.scale)) / float(F32(out.scale)))
    lo = max(out.lo, out.zp)
    return lambda x: np.clip(f(x.astype(I64) - p.zp) + out.zp, lo, out.hi)


def _shape(node: Node, ins: list[QParams], out: QParams) -> Kernel:
    fn = OPS[node.op].fn
    attrs = dict(node.attrs)
    fixes = [_requant(p, out) for p in ins]
    return lambda *xs: fn(*(f(x) for f, x in zip(fixes, xs)), **attrs)


_INT: dict[str, Callable[[Node, list, QParams], Kernel]] = {
    "add": _add_sub(1),
    "sub": _add_sub(-1),
    "mul": _mul,
    "sigmoid": _lut(lambda x: sigmoid(x)),
    "tanh": _lut(np.tanh),
    "relu": _relu,
    **{op: _shape for op in SHAPE_OPS},
}
# the int8 kernels rounding="tflite" replaces (the others already round as TFLite's do)
_FIXED: dict[str, Callable[[Node, list, QParams], Kernel]] = {
    "add": lambda node, ins, out: fixed_add_sub(1, ins, out),
    "sub": lambda node, ins, out: fixed_add_sub(-1, ins, out),
    "mul": lambda node, ins, out: fixed_mul(ins, out),
}
