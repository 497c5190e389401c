"""The zoo of model kinds rnnedge must export: (name, factory, example) triples.

Each factory builds a seeded, randomly initialised model in eval mode; each example is ONE
step of input in the model's own convention.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

F_IN, H = 8, 16


class Seq(nn.Module):
    """forward(x) runs an RNN over time with no state argument: streamified."""

    def __init__(self, rnn: nn.Module, out_features: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(out_features, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


class SeqWithState(nn.Module):
    """forward(x, h) -> (y, h): an explicit state that keeps its signature."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(F_IN, H, num_layers=2, batch_first=True)
        self.head = nn.Linear(H, 3)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.gru(x, h)
        return self.head(out), h


class Cells(nn.Module):
    """Cells in a custom forward(x, h, c, g): LSTMCell feeding a GRUCell."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTMCell(F_IN, H)
        self.gru = nn.GRUCell(H, 12)
        self.head = nn.Linear(12, 5)

    def forward(self, x, h, c, g):
        h, c = self.lstm(x, (h, c))
        g = self.gru(h, g)
        return self.head(torch.tanh(g)), h, c, g


class NestedStateCell(nn.Module):
    """forward(x, (h, c)) -> (y, (h, c)): states as a tuple argument."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(F_IN, H)

    def forward(self, x, state):
        h, c = self.cell(x, state)
        return h * 2.0, (h, c)


class RNNCellRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.RNNCell(F_IN, H, nonlinearity="relu")

    def forward(self, x, h):
        h = self.cell(x, h)
        return torch.sigmoid(h), h


class FrontEnd(nn.Module):
    """A per-step audio-like chunk: reflect pad, Conv1d, LayerNorm, GELU/SiLU, then a GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, kernel_size=3, stride=1, dilation=2)
        self.norm = nn.LayerNorm(4)
        self.gru = nn.GRU(4 * 8, H, batch_first=True)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Sequential(nn.Linear(H, 8), nn.ReLU(), nn.Linear(8, 4), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (1, 1, 16) = 2 channels x 8
        c = x.reshape(x.shape[0], 2, 8)
        c = F.pad(c, (2, 2), mode="reflect")
        c = F.pad(c, (0, 0), value=0.0)
        c = self.conv(c).transpose(1, 2)  # (1, 8, 4)
        c = F.silu(F.gelu(self.norm(c)))
        out, _ = self.gru(self.drop(c.reshape(x.shape[0], 1, -1)))
        return torch.sigmoid(self.head(out))


class MathHead(nn.Module):
    """Elementwise and shape math around an LSTM: add, mul, pow, sqrt, mean, cat, split,
    slice, reshape, squeeze/unsqueeze, stack, constant pad."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(F_IN, H)
        self.lin = nn.Linear(13, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (1, 1, 8), time first
        out, _ = self.lstm(x * 0.5 + 1.0)
        a, b = out.squeeze(0).split(8, dim=-1)
        m = torch.sqrt(a.pow(2) + 1.0).mean(dim=-1, keepdim=True)
        s = torch.stack([a, b * a], dim=0).reshape(1, 16)[:, 2:13:2]  # 6 values
        z = torch.cat([s, m, F.pad(b[:, :4], (1, 1))], dim=-1).unsqueeze(0)  # (1, 1, 13)
        return self.lin(z - m.unsqueeze(0) / 2)


class TwoRNNs(nn.Module):
    """Two different RNNs stacked, both streamified."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(F_IN, H, batch_first=True)
        self.lstm = nn.LSTM(H, 6, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        out, _ = self.lstm(out)
        return out


class StateCopiesInput(nn.Module):
    """State out = a copy of x: the numpy executor would hand back a view of the caller's x
    (tests/runtime/test_runtime.py checks that the state never aliases the caller's arrays)."""

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x - prev, x.clone()


def _seq(rnn: nn.Module, out: int) -> Callable[[], nn.Module]:
    return lambda: Seq(rnn, out)


def _x(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


ZOO: dict[str, tuple[Callable[[], nn.Module], Callable[[], object]]] = {
    "gru": (lambda: Seq(nn.GRU(F_IN, H, batch_first=True), H), lambda: _x(1, 1, F_IN)),
    "gru_2layer_time_first": (
        lambda: Seq(nn.GRU(F_IN, H, num_layers=2), H),
        lambda: _x(1, 1, F_IN),
    ),
    "gru_no_bias": (
        lambda: Seq(nn.GRU(F_IN, H, bias=False, batch_first=True), H),
        lambda: _x(1, 1, F_IN),
    ),
    "lstm_2layer": (
        lambda: Seq(nn.LSTM(F_IN, H, num_layers=2, batch_first=True), H),
        lambda: _x(1, 1, F_IN),
    ),
    "lstm_no_bias": (lambda: Seq(nn.LSTM(F_IN, H, bias=False), H), lambda: _x(1, 1, F_IN)),
    "lstm_proj": (
        lambda: Seq(nn.LSTM(F_IN, H, proj_size=5, batch_first=True), 5),
        lambda: _x(1, 1, F_IN),
    ),
    "rnn_tanh_2layer": (lambda: Seq(nn.RNN(F_IN, H, num_layers=2), H), lambda: _x(1, 1, F_IN)),
    "rnn_relu": (
        lambda: Seq(nn.RNN(F_IN, H, nonlinearity="relu", batch_first=True), H),
        lambda: _x(1, 1, F_IN),
    ),
    "gru_batch2": (lambda: Seq(nn.GRU(F_IN, H, batch_first=True), H), lambda: _x(2, 1, F_IN)),
    "gru_explicit_state": (SeqWithState, lambda: (_x(1, 1, F_IN), _x(2, 1, H))),
    "cells": (Cells, lambda: (_x(1, F_IN), _x(1, H), _x(1, H), _x(1, 12))),
    "lstm_cell_nested_state": (NestedStateCell, lambda: (_x(1, F_IN), (_x(1, H), _x(1, H)))),
    "rnn_cell_relu": (RNNCellRelu, lambda: (_x(1, F_IN), _x(1, H))),
    "front_end": (FrontEnd, lambda: _x(1, 1, 16)),
    "math_head": (MathHead, lambda: _x(1, 1, F_IN)),
    "two_rnns": (TwoRNNs, lambda: _x(1, 1, F_IN)),
    "state_copies_input": (StateCopiesInput, lambda: (_x(1, 3), _x(1, 3))),
}


def build(name: str) -> tuple[nn.Module, object]:
    factory, example = ZOO[name]
    torch.manual_seed(sum(map(ord, name)))
    return factory().eval(), example()


class RnnWithHead(nn.Module):
    """A random-weight GRU/LSTM/RNN (batch_first, no state argument) and a Linear(hidden, 8)."""

    def __init__(self, kind: str, hidden: int, layers: int, features: int) -> None:
        super().__init__()
        cls = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[kind]
        self.rnn = cls(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def rnn_with_head(kind: str, hidden: int, layers: int, features: int) -> nn.Module:
    torch.manual_seed(hidden + layers)
    return RnnWithHead(kind, hidden, layers, features).eval()
