"""Lowering of PyTorch's recurrent ATen ops to Graph ops, for ONE time step.

Gate orders and weight layouts live here and nowhere else (PyTorch, torch/nn/modules/rnn.py):
  GRU  weight_ih/hh rows: r, z, n.   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  (reset
       applied after the hidden matmul: ONNX's linear_before_reset=1)
  LSTM weight_ih/hh rows: i, f, g, o.  We reorder rows to i, f, o, g so one sigmoid covers
       the three contiguous sigmoid gates and one tanh the cell candidate.
  RNN  h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu.
Sequence ops (aten.gru.input, ...) are lowered at T == 1 only; a state whose initial value is a
constant (the model passed no state) is lifted into a graph input/output pair ("streamify").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnedge.errors import UnsupportedModelError
from rnnedge.export.capture.bidirectional import lower_bidirectional
from rnnedge.export.capture.builder import GraphBuilder, Sym
from rnnedge.export.capture.context import Ctx, const, sym


@dataclass(frozen=True)
class CellWeights:
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None
    w_hr: np.ndarray | None = None  # LSTM projection (proj_size > 0)

    def rows(self, order: list[int], hidden: int) -> CellWeights:
        """The same weights with gate blocks (each `hidden` rows) in a new order."""
        idx = np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in order])
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return CellWeights(
            self.w_ih[idx], self.w_hh[idx], pick(self.b_ih), pick(self.b_hh), self.w_hr
        )


def _bias(w: CellWeights, lo: int, hi: int) -> np.ndarray | None:
    # b_ih + b_hh folded into the input-side linear where the two are simply added
    if w.b_ih is None:
        return None
    return w.b_ih[lo:hi] + w.b_hh[lo:hi]


def _linear(b: GraphBuilder, x: Sym, w: np.ndarray, bias: np.ndarray | None, hint: str) -> Sym:
    ins = [x, b.const(w, f"{hint}.w")]
    if bias is not None:
        ins.append(b.const(bias, f"{hint}.b"))
    return b.op("linear", ins, hint)


def _last_slice(b: GraphBuilder, x: Sym, start: int, end: int, hint: str) -> Sym:
    axis = len(b.shape(x)) - 1
    return b.op("slice", [x], hint, axis=axis, start=start, end=end, step=1)


def gru_cell(b: GraphBuilder, x: Sym, h: Sym, w: CellWeights, hint: str) -> Sym:
    # One linear per side with all three gates (as LSTM's), sliced after: two matmuls instead
    # of four, fewer kernel calls per step on every backend (docs/int8.md, "Latency").
    hs = w.w_hh.shape[1]
    zeros = np.zeros(2 * hs, w.w_hh.dtype)
    b_x = None if w.b_ih is None else np.concatenate([_bias(w, 0, 2 * hs), w.b_ih[2 * hs :]])
    b_h = None if w.b_hh is None else np.concatenate([zeros, w.b_hh[2 * hs :]])
    gx = _linear(b, x, w.w_ih, b_x, f"{hint}.gates_x")
    gh = _linear(b, h, w.w_hh, b_h, f"{hint}.gates_h")
    rz_pre = b.op(
        "add",
        [
            _last_slice(b, gx, 0, 2 * hs, f"{hint}.rz_x"),
            _last_slice(b, gh, 0, 2 * hs, f"{hint}.rz_h"),
        ],
    )
    rz = b.op("sigmoid", [rz_pre], f"{hint}.rz")
    r = _last_slice(b, rz, 0, hs, f"{hint}.r")
    z = _last_slice(b, rz, hs, 2 * hs, f"{hint}.z")
    n_x = _last_slice(b, gx, 2 * hs, 3 * hs, f"{hint}.n_x")
    n_h = _last_slice(b, gh, 2 * hs, 3 * hs, f"{hint}.n_h")
    n = b.op("tanh", [b.op("add", [n_x, b.op("mul", [r, n_h])])], f"{hint}.n")
    # h' = (1 - z) n + z h  ==  n + z (h - n): one op fewer
    return b.op("add", [n, b.op("mul", [z, b.op("sub", [h, n])])], f"{hint}.h")


def lstm_cell(
    b: GraphBuilder, x: Sym, h: Sym, c: Sym, w: CellWeights, hint: str
) -> tuple[Sym, Sym]:
    hs = w.w_hh.shape[0] // 4
    w = w.rows([0, 1, 3, 2], hs)  # i, f, g, o -> i, f, o, g
    pre = b.op(
        "add",
        [
            _linear(b, x, w.w_ih, _bias(w, 0, 4 * hs), f"{hint}.gates_x"),
            _linear(b, h, w.w_hh, None, f"{hint}.gates_h"),
        ],
    )
    ifo = b.op("sigmoid", [_last_slice(b, pre, 0, 3 * hs, f"{hint}.ifo_pre")], f"{hint}.ifo")
    g = b.op("tanh", [_last_slice(b, pre, 3 * hs, 4 * hs, f"{hint}.g_pre")], f"{hint}.g")
    i, f, o = (
        _last_slice(b, ifo, k * hs, (k + 1) * hs, f"{hint}.{n}") for k, n in enumerate("ifo")
    )
    c_new = b.op("add", [b.op("mul", [f, c]), b.op("mul", [i, g])], f"{hint}.c")
    h_new = b.op("mul", [o, b.op("tanh", [c_new])], f"{hint}.h")
    if w.w_hr is not None:
        h_new = _linear(b, h_new, w.w_hr, None, f"{hint}.proj")
    return h_new, c_new


def rnn_cell(b: GraphBuilder, x: Sym, h: Sym, w: CellWeights, act: str, hint: str) -> Sym:
    pre = b.op(
        "add",
        [
            _linear(b, x, w.w_ih, _bias(w, 0, w.w_ih.shape[0]), f"{hint}.x"),
            _linear(b, h, w.w_hh, None, f"{hint}.h_in"),
        ],
    )
    return b.op(act, [pre], f"{hint}.h")


@dataclass(frozen=True)
class SeqCall:
    """The arguments of aten.{gru,lstm,rnn_tanh,rnn_relu}.input, made explicit."""

    kind: str  # "gru" | "lstm" | "rnn_tanh" | "rnn_relu"
    params: list[np.ndarray]
    has_biases: bool
    num_layers: int
    bidirectional: bool
    batch_first: bool

    def layer_weights(self, layer: int) -> CellWeights:
        per = len(self.params) // self.num_layers
        p = self.params[layer * per : (layer + 1) * per]
        w_ih, w_hh = p[0], p[1]
        b_ih, b_hh = (p[2], p[3]) if self.has_biases else (None, None)
        w_hr = p[-1] if per in (3, 5) else None  # proj_size adds weight_hr last
        return CellWeights(w_ih, w_hh, b_ih, b_hh, w_hr)

    def direction_weights(self, layer: int, direction: int) -> CellWeights:
        """A bidirectional layer's weights: per layer, the forward set then `_reverse`."""
        half = SeqCall(**{**vars(self), "num_layers": 2 * self.num_layers})
        return half.layer_weights(2 * layer + direction)

    def cell(self, b: GraphBuilder, x: Sym, prev: list[Sym], w: CellWeights, hint: str):
        """One step of one cell of this call's kind: the new [h] or [h, c]."""
        if self.kind == "gru":
            return [gru_cell(b, x, prev[0], w, hint)]
        if self.kind == "lstm":
            return list(lstm_cell(b, x, prev[0], prev[1], w, hint))
        return [rnn_cell(b, x, prev[0], w, self.kind.removeprefix("rnn_"), hint)]


def lower_sequence(
    b: GraphBuilder,
    call: SeqCall,
    x: Sym,
    states: list[Sym],
    out_shape: tuple[int, ...],
    where: str,
) -> tuple[Sym, list[Sym]]:
    """One step of a (stacked) sequence RNN. `states` is [h] or [h, c], each [L, B, H] (or
    [L, H] unbatched). Returns the step's output in `out_shape` and the new states."""
    if call.bidirectional:
        raise UnsupportedModelError(
            f"{where}: bidirectional {call.kind.upper()} cannot stream: its backward direction "
            "needs the whole future sequence before the first output (offline sequence mode is "
            "not supported yet); use a unidirectional layer for streaming"
        )
    xs = b.shape(x)
    time_axis = 1 if (call.batch_first and len(xs) == 3) else 0
    if xs[time_axis] != 1:
        raise UnsupportedModelError(
            f"{where}: export needs ONE time step, the example has {xs[time_axis]} "
            f"along the time axis (axis {time_axis}); pass an example of shape "
            f"{[*xs[:time_axis], 1, *xs[time_axis + 1 :]]}"
        )
    batched = len(xs) == 3
    lead = [xs[1 - time_axis]] if batched else [1]
    layer_in = b.op("reshape", [x], f"{where}.x", shape=[*lead, xs[-1]])
    new: list[list[Sym]] = [[] for _ in states]
    for layer in range(call.num_layers):
        hint = f"{where}.l{layer}"
        prev = [_layer_state(b, s, layer, call.num_layers, lead, hint) for s in states]
        outs = call.cell(b, layer_in, prev, call.layer_weights(layer), hint)
        for k, o in enumerate(outs):
            new[k].append(o)
        layer_in = outs[0]
    y = b.op("reshape", [layer_in], f"{where}.y", shape=list(out_shape))
    return y, [_stack_layers(b, layers, b.shape(s), where) for layers, s in zip(new, states)]


def _layer_state(
    b: GraphBuilder, s: Sym, layer: int, layers: int, lead: list[int], hint: str
) -> Sym:
    one = (
        s
        if layers == 1
        else b.op("slice", [s], f"{hint}.s", axis=0, start=layer, end=layer + 1, step=1)
    )
    return b.op("reshape", [one], f"{hint}.state", shape=[*lead, b.shape(s)[-1]])


def _stack_layers(b: GraphBuilder, layers: list[Sym], shape: tuple[int, ...], where: str) -> Sym:
    one_shape = [1, *shape[1:]]
    parts = [b.op("reshape", [s], f"{where}.hn", shape=one_shape) for s in layers]
    if len(parts) == 1:
        return parts[0]
    return b.op("concat", parts, f"{where}.hn", axis=0)


# --- the recurrent ATen entries of ATEN_TO_GRAPH (aten.py) ---------------------------------

RNN_SEQUENCE_OPS = {
    "aten.gru.input": "gru",
    "aten.lstm.input": "lstm",
    "aten.rnn_tanh.input": "rnn_tanh",
    "aten.rnn_relu.input": "rnn_relu",
}
RNN_CELL_OPS = {
    "aten.gru_cell.default": "gru",
    "aten.lstm_cell.default": "lstm",
    "aten.rnn_tanh_cell.default": "rnn_tanh",
    "aten.rnn_relu_cell.default": "rnn_relu",
}


def _states(ctx: Ctx, hx: Any, kind: str) -> tuple[list[Sym], bool]:
    """The state tensors of an RNN call; lifted into new state inputs when they are constants
    (the model passed no state, or a fixed one). Returns them and whether they were lifted."""
    parts = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    if all(isinstance(p, Sym) for p in parts):
        step_input = ctx.b.inputs[0].name
        if any(ctx.b.depends_on(p, step_input) for p in parts):
            raise UnsupportedModelError(
                f"{ctx.where or kind}: the initial state is computed from the step input, so a "
                "stream would restart it at every step; pass the state as a forward() argument "
                "or leave it out"
            )
        return parts, False
    if any(isinstance(p, Sym) for p in parts):
        raise UnsupportedModelError(
            f"{ctx.where}: LSTM state (h, c) must be both given or both omitted"
        )
    names = ["h", "c"] if kind == "lstm" else ["h"]
    return [ctx.lift(f"{ctx.where or kind}.{n}", p) for n, p in zip(names, parts)], True


def _rnn_sequence(kind: str) -> Callable[..., Any]:
    def lower(
        ctx: Ctx,
        node,
        x,
        hx,
        params,
        has_biases,
        num_layers,
        _dropout,
        _train,
        bidirectional,
        batch_first,
    ):
        call = SeqCall(
            kind=kind,
            params=[const(ctx, p, f"{kind.upper()} weights") for p in params],
            has_biases=has_biases,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
        )
        if bidirectional:
            return _bidirectional(ctx, call, x, hx)
        states, lifted = _states(ctx, hx, kind)
        y, new = lower_sequence(ctx.b, call, sym(ctx, x), states, ctx.out_shape, ctx.where or kind)
        if lifted:
            for s, n in zip(states, new):
                ctx.emit_state(s, n)
        return (y, *new)

    return lower


def _bidirectional(ctx: Ctx, call: SeqCall, x: Any, hx: Any) -> tuple:
    """Both directions as cells with their own states, for an offline program."""
    y, pairs, finals = lower_bidirectional(
        ctx.b,
        sym(ctx, x),
        hx,
        layers=call.num_layers,
        batch_first=call.batch_first,
        out_shape=ctx.out_shape,
        where=ctx.where or call.kind,
        cell=lambda b, xi, prev, layer, d, hint: call.cell(
            b, xi, prev, call.direction_weights(layer, d), hint
        ),
        lift=ctx.lift,
    )
    for s, n in pairs:
        ctx.emit_state(s, n)
    return (y, *finals)


def _rnn_cell(kind: str) -> Callable[..., Any]:
    def lower(ctx: Ctx, node, x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
        w = CellWeights(
            *(
                None if p is None else const(ctx, p, f"{kind} cell weights")
                for p in (w_ih, w_hh, b_ih, b_hh)
            )
        )
        states, lifted = _states(ctx, hx, kind)
        x, hint = sym(ctx, x), ctx.where or kind
        if kind == "gru":
            new = [gru_cell(ctx.b, x, states[0], w, hint)]
        elif kind == "lstm":
            new = list(lstm_cell(ctx.b, x, states[0], states[1], w, hint))
        else:
            new = [rnn_cell(ctx.b, x, states[0], w, kind.removeprefix("rnn_"), hint)]
        if lifted:
            for s, n in zip(states, new):
                ctx.emit_state(s, n)
        return new[0] if kind != "lstm" else tuple(new)

    return lower


RECURRENT_ATEN: dict[str, Callable[..., Any]] = {
    **{name: _rnn_sequence(kind) for name, kind in RNN_SEQUENCE_OPS.items()},
    **{name: _rnn_cell(kind) for name, kind in RNN_CELL_OPS.items()},
}
