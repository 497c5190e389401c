"""TFLite lowering at precision "int8" (full integer): every tensor as the plan says.

The plan (quantize/int8.py) fixes each activation's type and parameters; the numpy spec
(runtime/quant/int8.py) fixes the arithmetic. This module writes the TFLite operators whose
kernels do that arithmetic, so LiteRT's output equals the spec's bit for bit:
  boundary   float32 model inputs -> QUANTIZE -> int tensors "<name>:q"; int outputs ->
             DEQUANTIZE -> float32 model outputs under the Graph names (the float file's I/O)
  linear     FULLY_CONNECTED int8: per-channel INT8 weights (quantize_weight), INT32 bias at
             x_scale * w_scale[n] (the plan's "bias" entry), int8 output
  add/sub/mul  ADD / SUB / MUL on int8, or int16 (the LSTM cell). TFLite's binary kernels
             need one input type, so an int8 input of an int16 op is widened first by QUANTIZE
             int8 -> int16 at scale / 128, zero point 0: (q - zp) * 128 fits int16, exactly;
             int16 ADD / SUB use the general-scale kernel (pot_scale_int16 = false)
  sigmoid/tanh  LOGISTIC / TANH int8 (LUT kernels) when the input is int8 and the output has
             the parameters TFLite prescribes (1/256, -128 and 1/128, 0)
  relu       RELU int8 / int16
  reshape, slice, concat, transpose  RESHAPE / STRIDED_SLICE / CONCATENATION / TRANSPOSE on
             the integers; an input whose parameters differ from the output's is requantized
             first (QUANTIZE)
  the rest   a float island: DEQUANTIZE the inputs, the float lowering (float_ops), QUANTIZE
             the output if the plan keeps it integer. tanh of the int16 LSTM cell runs here
             too: the spec tabulates float tanh over the int16 input and quantizes it to int8,
             which DEQUANTIZE (exact for a power-of-two scale) -> TANH -> QUANTIZE reproduces.
             (TFLite's int16 TANH interpolates its own 256-entry table, or for input scales
             2^-12 and 2^-11 runs gemmlowp's polynomial; mirroring either in numpy would mean
             copying TFLite's table, so the cell's tanh is a float island instead.)
Operator versions follow tensorflow/lite/tools/versioning/op_version.cc (`with_versions`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnedge.errors import ExportError
from rnnedge.export.tflite.emitter import FLOAT32, INT8, INT16, INT32, Emitter, fail
from rnnedge.export.tflite.float_ops import LOWERINGS, Lowering, Op
from rnnedge.export.tflite.writer import OperatorDef, Options, Program, QuantDef
from rnnedge.runtime.graph import Graph, Node
from rnnedge.runtime.quant.int8 import quantize, widen
from rnnedge.runtime.quant.plan import (
    FIXED_OUTPUTS,
    SHAPE_OPS,
    QParams,
    QuantPlan,
    quantize_bias,
    quantize_weight,
)

F32 = np.float32
TYPES = {"int8": INT8, "int16": INT16}
BINARY = {"add": Op.ADD, "sub": Op.SUB, "mul": Op.MUL}
LUTS = {"sigmoid": Op.LOGISTIC, "tanh": Op.TANH}  # at FIXED_OUTPUTS' parameters only


def _quant(p: QParams) -> QuantDef:
    return QuantDef((float(F32(p.scale)),), (int(p.zp),))


class Int8Lowering:
    """The lowerings of one emit_tflite call at precision "int8": `enter` quantizes the graph
    inputs, `lowerings` lowers each node, `leave` dequantizes the graph outputs."""

    def __init__(self, graph: Graph, plan: QuantPlan, e: Emitter) -> None:
        self.e, self.graph, self.plan = e, graph, plan
        self.params: dict[str, QParams | None] = {}
        for name in [t.name for t in graph.inputs] + [n.outputs[0] for n in graph.nodes]:
            if plan.activation(name) is None:
                raise ExportError(f"TFLite int8 export: quant.json has no parameters for {name!r}")
            self.params[name] = plan.params(name)
        self.boundary = {t.name for t in (*graph.inputs, *graph.outputs)}
        self.home: dict[str, str] = {}  # Graph tensor -> the TFLite tensor holding its plan form
        self.views: dict[tuple[str, QParams | None], str] = {}  # converted copies, made once

    # --- boundary ------------------------------------------------------------------------

    def enter(self) -> None:
        e = self.e
        for t in self.graph.inputs:
            p = self.params[t.name]
            self.home[t.name] = t.name
            if p is not None:
                q = self._define(t.name, p)
                e.op(Op.QUANTIZE, [e.tensor(t.name)], [q])

    def leave(self) -> None:
        e = self.e
        inputs = {t.name for t in self.graph.inputs}
        for t in self.graph.outputs:
            if t.name not in inputs and self.params.get(t.name) is not None:
                e.op(Op.DEQUANTIZE, [e.tensor(self.home[t.name])], [e.tensor(t.name)])

    # --- tensors -------------------------------------------------------------------------

    def _define(self, name: str, p: QParams) -> int:
        """The int tensor of Graph tensor `name`: the Graph name inside, "<name>:q" when the
        Graph name is a float32 model input or output."""
        tname = f"{name}:q" if name in self.boundary else name
        self.home[name] = tname
        return self.e.activation(tname, self.e.shape(name), TYPES[p.dtype], _quant(p))

    def _operand(self, name: str, p: QParams | None) -> str:
        """The name of the tensor holding `name` in its plan form `p`."""
        if name not in self.graph.constants:
            return self.home[name]
        if p is None:
            return name  # a float32 constant, as the float emitter writes it
        key = (name, p)
        if key not in self.views:
            value = quantize(self.graph.constants[name], p)
            idx = self.e.const_quantized(f"{name}:q", value, TYPES[p.dtype], _quant(p))
            self.views[key] = self.e.name(idx)
        return self.views[key]

    def _convert(self, name: str, p: QParams, to: QParams | None) -> str:
        """`name` (held at `p`) as a new tensor at `to` (None: float32), by QUANTIZE or
        DEQUANTIZE; made once per target."""
        src = self._operand(name, p)
        key = (src, to)
        if key not in self.views:
            suffix = ":f" if to is None else f":{to.dtype}" if to.dtype != p.dtype else ":rq"
            view = self.e.fresh(f"{src}{suffix}")
            shape = self.e.shape(src)
            if to is None:
                self.e.activation(view, shape, FLOAT32)
                self.e.op(Op.DEQUANTIZE, [self.e.tensor(src)], [self.e.tensor(view)])
            else:
                self.e.activation(view, shape, TYPES[to.dtype], _quant(to))
                self.e.op(Op.QUANTIZE, [self.e.tensor(src)], [self.e.tensor(view)])
            self.views[key] = view
        return self.views[key]

    def _at(self, name: str, p: QParams, to: QParams) -> str:
        return self._operand(name, p) if p == to else self._convert(name, p, to)

    # --- nodes ---------------------------------------------------------------------------

    def lowerings(self) -> dict[str, Lowering]:
        return {op: self.lower for op in LOWERINGS}

    def lower(self, e: Emitter, node: Node) -> None:
        """Dispatch as the spec's Int8Executor._compile does."""
        out = self.params[node.outputs[0]]
        ins = [self.plan.params(i) for i in node.inputs]  # activations and constants
        if node.op == "gather" and self.plan.weight(node.outputs[0]):
            self._gather(node, out)
        elif node.op == "linear" and out is not None and ins[0] is not None:
            self._linear(node, ins[0], out)
        elif node.op == "linear" and self.plan.weight(node.outputs[0]):
            self._weight_only(node, ins, out)
        elif out is None or any(p is None for p in ins):
            self._float(node, ins, out)
        elif node.op in BINARY:
            self._binary(node, ins, out)
        elif node.op in LUTS and ins[0].dtype == "int8" and out == FIXED_OUTPUTS[node.op]:
            self.e.op(LUTS[node.op], [self._tensor(node.inputs[0], ins[0])], [self._out(node)])
        elif node.op == "relu":
            self.e.op(Op.RELU, [self._tensor(node.inputs[0], ins[0])], [self._out(node)])
        elif node.op in SHAPE_OPS:
            names = [self._at(i, p, out) for i, p in zip(node.inputs, ins)]
            self._out(node)
            renamed = dataclasses.replace(node, inputs=tuple(names), outputs=(self._home(node),))
            LOWERINGS[node.op](self.e, renamed)
        else:  # sigmoid / tanh of int16, or at output parameters LOGISTIC / TANH cannot give
            self._float(node, ins, out)

    def _tensor(self, name: str, p: QParams) -> int:
        return self.e.tensor(self._operand(name, p))

    def _out(self, node: Node) -> int:
        return self._define(node.outputs[0], self.params[node.outputs[0]])

    def _home(self, node: Node) -> str:
        return self.home[node.outputs[0]]

    def _float(self, node: Node, ins: list[QParams | None], out: QParams | None) -> None:
        """DEQUANTIZE the int inputs, run the float lowering, QUANTIZE an int output."""
        names = [
            self._operand(i, p) if p is None else self._convert(i, p, None)
            for i, p in zip(node.inputs, ins)
        ]
        y = node.outputs[0]
        if out is None:
            self.home[y] = y
            target = y
        else:
            target = self.e.fresh(f"{y}:f")
            self.e.activation(target, self.e.shape(y), FLOAT32)
        LOWERINGS[node.op](
            self.e, dataclasses.replace(node, inputs=tuple(names), outputs=(target,))
        )
        if out is not None:
            self.e.op(Op.QUANTIZE, [self.e.tensor(target)], [self._out(node)])

    def _binary(self, node: Node, ins: list[QParams], out: QParams) -> None:
        if out.dtype == "int16":  # one input type: widen int8 inputs (exact)
            names = [self._at(i, p, widen(p)) for i, p in zip(node.inputs, ins)]
        elif any(p.dtype != "int8" for p in ins):
            raise fail(node, "an int16 input with an int8 output has no TFLite kernel")
        else:
            names = [self._operand(i, p) for i, p in zip(node.inputs, ins)]
        options = None
        if node.op != "mul":
            kind = "AddOptions" if node.op == "add" else "SubOptions"
            options = Options(kind, (("PotScaleInt16", False),))  # general int16 scales
        inputs = [self.e.tensor(n) for n in names]
        self.e.op(BINARY[node.op], inputs, [self._out(node)], options)

    def _linear(self, node: Node, x: QParams, out: QParams) -> None:
        e, y = self.e, node.outputs[0]
        x_name, w_name, *bias = node.inputs
        w_t = self.plan.weight(y)
        w = e.constant(w_name)
        if w_t is None or w_t.tensor != w_name or w is None or w.ndim != 2:
            raise fail(node, f"quant.json has no int8 weight for {w_name!r}")
        if len(w_t.scale) != w.shape[0]:
            raise fail(node, f"quant.json does not fit weight {w_name!r}")
        if len(e.shape(x_name)) == 0:
            raise fail(node, "needs x of rank >= 1")
        scales = tuple(float(F32(s)) for s in w_t.scale)
        zeros = (0,) * len(scales)
        w_q = e.const_quantized(
            f"{w_name}:int8", quantize_weight(w, w_t.scale), INT8, QuantDef(scales, zeros, 0)
        )
        b = -1
        if bias:
            b = e.const_quantized(f"{bias[0]}:int32", *self._bias(node, bias[0], w.shape[0]))
        keep = len(e.shape(x_name)) != 2
        options = Options("FullyConnectedOptions", (("KeepNumDims", keep),))
        e.op(Op.FULLY_CONNECTED, [self._tensor(x_name, x), w_q, b], [self._out(node)], options)

    def _weight_only(self, node: Node, ins: list[QParams | None], out: QParams | None) -> None:
        # weight-only int8 (quantize/weight_only.py), as the spec's Int8Executor._weight_only:
        # the per-channel int8 weight through DEQUANTIZE (w_q * s, exact in float32) into the
        # float FULLY_CONNECTED, a float island otherwise (docs/int8.md: LiteRT runs it)
        e, (x, w_name, *bias) = self.e, node.inputs
        w_t, w = self.plan.weight(node.outputs[0]), e.constant(w_name)
        if w_t is None or w_t.tensor != w_name or w is None or w.ndim != 2:
            raise fail(node, f"quant.json has no int8 weight for {w_name!r}")
        scales = tuple(float(F32(s)) for s in w_t.scale)
        quant = QuantDef(scales, (0,) * len(scales), 0)
        w_q = e.const_quantized(f"{w_name}:int8", quantize_weight(w, w_t.scale), INT8, quant)
        w_f = e.fresh(f"{w_name}:dq")
        self.home[w_f] = w_f
        e.op(Op.DEQUANTIZE, [w_q], [e.activation(w_f, w.shape, FLOAT32)])
        renamed = dataclasses.replace(node, inputs=(x, w_f, *bias))
        self._float(renamed, [ins[0], None, *ins[2:]], out)

    def _gather(self, node: Node, out: QParams | None) -> None:
        # an embedding with a per-row int8 table, as the spec's Int8Executor._gather: GATHER
        # the int8 rows (gather.cc copies int8 as it is) and their scales by the ids, CAST +
        # MUL in float32, QUANTIZE to the output (none when weight-only: the rows are float).
        # The table carries no quantization parameters: no kernel reads them (the scales are
        # the float column), and a per-row float32 scale + int64 zero point cost 12 bytes a
        # row (3 KB of a 256-token table; LiteRT builtin and XNNPACK run it alike)
        e, y = self.e, node.outputs[0]
        (table, ids), t = node.inputs, self.plan.weight(y)
        value = e.constant(table)
        if t is None or value is None or value.ndim != 2 or len(t.scale) != len(value):
            raise fail(node, f"quant.json has no int8 table for {table!r}")
        scales = tuple(float(F32(s)) for s in t.scale)
        q = e.const_quantized(f"{table}:int8", quantize_weight(value, t.scale), INT8, None)
        col = e.const_f32(f"{table}:scale", np.asarray(scales, F32)[:, None])
        shape, ids_t = e.shape(y), e.tensor(self.home[ids])
        options = Options("GatherOptions", (("Axis", 0), ("BatchDims", 0)))
        rows_q = e.temp(f"{y}:rows", shape, INT8)
        e.op(Op.GATHER, [q, ids_t], [rows_q], options)
        rows = e.temp(f"{y}:rows_f", shape)
        e.op(Op.CAST, [rows_q], [rows])
        row_scale = e.temp(f"{y}:row_scale", (*shape[:-1], 1))
        e.op(Op.GATHER, [col, ids_t], [row_scale], options)
        if out is None:  # weight-only: the float rows are the output
            self.home[y] = y
            e.op(Op.MUL, [rows, row_scale], [e.tensor(y)])
            return
        deq = e.temp(f"{y}:f", shape)
        e.op(Op.MUL, [rows, row_scale], [deq])
        e.op(Op.QUANTIZE, [deq], [self._out(node)])

    def _bias(self, node: Node, name: str, n: int) -> tuple[np.ndarray, int, QuantDef]:
        t = self.plan.bias(name)
        value = self.graph.constants.get(name)
        if t is None or value is None or value.size != n or len(t.scale) != n:
            raise fail(node, f"quant.json has no int32 bias [{n}] for {name!r}")
        q = quantize_bias(value.reshape(n), t.scale)
        # One scale, not n: with per-channel int8 weights the kernels take the bias as the
        # int32 it is and requantize by x_scale * w_scale[n] (the builtin kernel reads the
        # weight's scales only, XNNPACK validates a single bias scale as qint32), so n bias
        # scales and n int64 zero points were 12n bytes no kernel read (issue 16: 1.5 KB of a
        # 27 KB GRU 64). The one scale is the first channel's, exact for a per-tensor weight.
        return q, INT32, QuantDef((float(F32(t.scale[0])),), (0,), 0)


# --- operator versions (tensorflow/lite/tools/versioning/op_version.cc) -----------------------


def with_versions(program: Program) -> Program:
    """The program with each operator at the version its tensor types need."""
    ops = tuple(
        dataclasses.replace(op, version=max(op.version, _version(op, program)))
        for op in program.operators
    )
    return dataclasses.replace(program, operators=ops)


def _version(op: OperatorDef, program: Program) -> int:
    t = program.tensors
    ins = [t[i] for i in op.inputs if i >= 0]
    a, y = ins[0].dtype, t[op.outputs[0]].dtype
    fields = dict(op.options.fields) if op.options else {}
    code = op.code
    if code == Op.FULLY_CONNECTED and a == INT8:
        return 5 if fields.get("KeepNumDims") else 4
    if code == Op.ADD:
        return 3 if a == INT16 else 2 if a == INT8 else 1
    if code == Op.SUB:
        return 5 if a == INT16 else 2 if a == INT8 else 1
    if code == Op.MUL:
        if a == INT16:
            return 4
        if a == INT8:
            s = [x.quantization.scale[0] for x in (*ins, t[op.outputs[0]])]
            return 3 if s[0] * s[1] / s[2] >= 1 else 2
        return 1
    if code in (Op.LOGISTIC, Op.TANH):
        return 3 if a == INT16 and y == INT16 else 2 if a == INT8 else 1
    if code == Op.QUANTIZE:
        return 2 if y == INT16 else 1
    if code == Op.DEQUANTIZE:  # 5: an int8 weight per channel (weight-only int8)
        per_channel = len(ins[0].quantization.scale) > 1 if ins[0].quantization else False
        return 3 if a == INT16 else (5 if per_channel else 2) if a == INT8 else 1
    if code == Op.RELU:
        return 3 if a == INT16 else 2 if a == INT8 else 1
    if code == Op.STRIDED_SLICE:
        return 4 if len(ins[0].shape) > 4 else 2 if a == INT8 else 1
    if code == Op.CONCATENATION:
        return 3 if a == INT16 else 2 if a == INT8 else 1
    if code == Op.GATHER:  # an int8 embedding table
        return 2 if a == INT8 else 1
    if code == Op.CAST:  # its int8 rows to float32
        return 3 if INT8 in (a, y) else 1
    return 1
