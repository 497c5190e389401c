"""A zoo of realistic models, written the way users write them (tests only).

Each entry says how the user runs the model, so the tests can run it that way with PyTorch:
`axis` is the time axis of a streamified model's input and outputs (the model is called once
over the whole sequence), None for a model that takes its state (called step by step with its
own states fed back). An output without a time axis holds the last step only
(`head(out[:, -1])`, a final state): the tests read it from runs over every prefix.
Models that rnnedge must refuse (they would stream wrong) are in realistic_refused.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from realistic_models_heads import VOCAB, CharLM, SoftmaxKeywordSpotter, SoftplusDecayCell
from torch import nn


@dataclass(frozen=True, kw_only=True)
class Entry:
    factory: Callable[[], nn.Module]
    example: Callable[[], object]
    axis: int | None = 1
    # full int8: "ok" when it holds the zoo's int8 bound today; otherwise what goes wrong
    # (the test expects that failure, strictly, so a fix shows up); None: not checked in int8
    int8: str | None = None
    ids: int = 0  # > 0: the step input holds token ids in [0, ids), int64


def _z(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


class KeywordSpotter(nn.Module):
    """40 log-mel features per frame -> dense -> GRU -> 12 keyword logits per frame."""

    def __init__(self, last_only: bool = False) -> None:
        super().__init__()
        self.frontend = nn.Sequential(nn.Linear(40, 32), nn.ReLU())
        self.gru = nn.GRU(32, 48, batch_first=True)
        self.head = nn.Linear(48, 12)
        self.last_only = last_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.frontend(x))
        return self.head(out[:, -1] if self.last_only else out)


class IotForecaster(nn.Module):
    """6 sensors, normalised with fixed statistics, time-first 2-layer LSTM, 1-step forecast."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.linspace(-0.5, 0.5, 6))
        self.register_buffer("std", torch.linspace(0.5, 2.0, 6))
        self.lstm = nn.LSTM(6, 24, num_layers=2)
        self.head = nn.Linear(24, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, B, 6)
        out, _ = self.lstm((x - self.mean) / self.std)
        return self.head(out)


class SpeechEnhancer(nn.Module):
    """Magnitude frames -> log compression -> LSTM -> sigmoid mask times the input."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(33, 64, batch_first=True)
        self.mask = nn.Linear(64, 33)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag = x.abs()
        out, _ = self.lstm(torch.log(mag + 1e-3))
        return torch.sigmoid(self.mask(out)) * mag


class HandGRUCell(nn.Module):
    """A GRU cell written out by hand, stepped with its state."""

    def __init__(self, f: int = 8, h: int = 16) -> None:
        super().__init__()
        self.x2 = nn.Linear(f, 3 * h)
        self.h2 = nn.Linear(h, 3 * h)
        self.head = nn.Linear(h, 4)

    def forward(self, x, h):
        xr, xz, xn = self.x2(x).chunk(3, dim=-1)
        hr, hz, hn = self.h2(h).chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return self.head(h), h


class HandLSTMCell(nn.Module):
    """An LSTM cell by hand with peephole-free gates and a separate (h, c)."""

    def __init__(self, f: int = 8, h: int = 16) -> None:
        super().__init__()
        self.gates = nn.Linear(f + h, 4 * h)

    def forward(self, x, h, c):
        i, f, g, o = self.gates(torch.cat([x, h], dim=-1)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, h, c


class LayerNormElman(nn.Module):
    """h = tanh(LayerNorm(W x + U h)), a normalised simple RNN by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w, self.u = nn.Linear(8, 20), nn.Linear(20, 20, bias=False)
        self.norm = nn.LayerNorm(20)
        self.head = nn.Linear(20, 3)

    def forward(self, x, h):
        h = torch.tanh(self.norm(self.w(x) + self.u(h)))
        return self.head(h), h


class StackedStateLSTMCell(nn.Module):
    """An LSTMCell whose (h, c) travel as ONE state tensor stacked on a new axis 0."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x, hc):
        h, c = self.cell(x, (hc[0], hc[1]))
        return self.head(h), torch.stack([h, c])


class PositiveNormaliser(nn.Module):
    """A running variance (always positive) normalises the input of a GRUCell."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(8, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, x, var, h):
        var = 0.95 * var + 0.05 * x * x
        h = self.cell(x / torch.sqrt(var + 1e-4), h)
        return self.head(h), var, h


class EmaSmoother(nn.Module):
    """An exponential moving average of a dense feature: y_t = a y_(t-1) + (1 - a) f(x_t)."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Linear(8, 8)

    def forward(self, x, ema):
        ema = 0.9 * ema + 0.1 * torch.tanh(self.feat(x))
        return ema * 2.0, ema


class GruLstmResidual(nn.Module):
    """GRU, then LSTM with a residual connection and LayerNorm: a composite encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 24, batch_first=True)
        self.lstm = nn.LSTM(24, 24, batch_first=True)
        self.norm = nn.LayerNorm(24)
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        a, _ = self.gru(x)
        b, _ = self.lstm(a)
        return self.head(self.norm(a + b))


class ParallelGRUs(nn.Module):
    """Two GRUs over the two halves of the features, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.GRU(4, 12, batch_first=True), nn.GRU(4, 8, batch_first=True)
        self.head = nn.Linear(20, 3)

    def forward(self, x):
        a, b = x.split(4, dim=-1)
        return self.head(torch.cat([self.left(a)[0], self.right(b)[0]], dim=-1))


class ResidualStack(nn.Module):
    """Three GRU layers of the same width with residual connections."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.layers = nn.ModuleList(nn.GRU(16, 16, batch_first=True) for _ in range(3))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        h = self.inp(x)
        for gru in self.layers:
            h = h + gru(h)[0]
        return self.head(h)


class LearnedInitialState(nn.Module):
    """A GRU started from a learned initial state (a parameter), streamified from it."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.h0 = nn.Parameter(torch.randn(1, 1, 16) * 0.5)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        out, _ = self.gru(x, self.h0.expand(1, x.shape[0], 16).contiguous())
        return self.head(out)


class TwoHeads(nn.Module):
    """An LSTM with two outputs: class logits and a bounded embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 20, batch_first=True, proj_size=10)
        self.cls, self.emb = nn.Linear(10, 4), nn.Linear(10, 6)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.cls(out), torch.tanh(self.emb(out))


class PerFrameConv(nn.Module):
    """A Conv1d over each frame's FEATURES (not over time), then a GRU: nothing mixes time."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, kernel_size=5, padding=2)
        self.gru = nn.GRU(4 * 16, 24, batch_first=True)
        self.head = nn.Sequential(nn.GELU(), nn.Linear(24, 3))

    def forward(self, x):  # (B, T, 16)
        b, t, f = x.shape
        c = F.relu(self.conv(x.reshape(b * t, 1, f)))
        out, _ = self.gru(c.reshape(b, t, 4 * f))
        return self.head(out)


class ClippedReluRNN(nn.Module):
    """A ReLU RNN with its output clipped, as fixed-point-friendly models do."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(8, 16, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(torch.clamp(out, 0.0, 4.0))


class DenoisingCellStack(nn.Module):
    """Two LSTMCells stacked, states passed as a tuple of tuples."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.LSTMCell(8, 16), nn.LSTMCell(16, 16)
        self.out = nn.Linear(16, 8)

    def forward(self, x, states):
        (h1, c1), (h2, c2) = states
        h1, c1 = self.c1(x, (h1, c1))
        h2, c2 = self.c2(h1, (h2, c2))
        return x - self.out(h2), ((h1, c1), (h2, c2))


class LoopedGRUCell(nn.Module):
    """nn.GRUCell in a Python loop over time, its state started at zeros inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(8, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):  # (B, T, 8)
        h = torch.zeros(x.shape[0], 16)
        outs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(self.head(h))
        return torch.stack(outs, dim=1)


class OutputsAndFinalState(nn.Module):
    """Returns the per-step outputs and the GRU's final state, as many encoders do."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 16, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        out, h = self.gru(x)
        return self.head(out), h


OK = "ok"
# Measured 2026-12 with the test's own data (max over every element and step, / range):
PEAK = "int8 error peaks above 3% of the output range at some steps (mean <= 1.6%, no drift)"
ZOO: dict[str, Entry] = {
    "kws_gru": Entry(factory=KeywordSpotter, example=lambda: _z(1, 1, 40), int8=OK),
    "kws_last_frame": Entry(
        factory=lambda: KeywordSpotter(last_only=True),
        example=lambda: _z(1, 1, 40),
        int8=OK,
    ),
    "kws_batch3": Entry(factory=KeywordSpotter, example=lambda: _z(3, 1, 40), int8=PEAK),
    "iot_forecaster": Entry(factory=IotForecaster, example=lambda: _z(1, 1, 6), axis=0, int8=OK),
    "iot_forecaster_batch4": Entry(
        factory=IotForecaster, example=lambda: _z(1, 4, 6), axis=0, int8=OK
    ),
    "speech_enhancer": Entry(factory=SpeechEnhancer, example=lambda: _z(1, 1, 33), int8=OK),
    "hand_gru_cell": Entry(
        factory=HandGRUCell, example=lambda: (_z(1, 8), _z(1, 16)), axis=None, int8=OK
    ),
    "hand_lstm_cell": Entry(
        factory=HandLSTMCell, example=lambda: (_z(1, 8), _z(1, 16), _z(1, 16)), axis=None, int8=OK
    ),
    "layernorm_elman": Entry(
        factory=LayerNormElman, example=lambda: (_z(1, 8), _z(1, 20)), axis=None, int8=OK
    ),
    "stacked_state_lstm_cell": Entry(
        factory=StackedStateLSTMCell, example=lambda: (_z(1, 8), _z(2, 1, 16)), axis=None, int8=OK
    ),
    "positive_normaliser": Entry(
        factory=PositiveNormaliser,
        example=lambda: (_z(1, 8), torch.ones(1, 8), _z(1, 16)),
        axis=None,
        int8=OK,
    ),
    "ema_smoother": Entry(
        factory=EmaSmoother, example=lambda: (_z(1, 8), _z(1, 8)), axis=None, int8=OK
    ),
    "gru_lstm_residual": Entry(factory=GruLstmResidual, example=lambda: _z(1, 1, 8), int8=OK),
    "parallel_grus": Entry(factory=ParallelGRUs, example=lambda: _z(1, 1, 8), int8=OK),
    "residual_stack": Entry(factory=ResidualStack, example=lambda: _z(1, 1, 8), int8=OK),
    "learned_initial_state": Entry(
        factory=LearnedInitialState, example=lambda: _z(1, 1, 8), int8=OK
    ),
    "two_heads": Entry(factory=TwoHeads, example=lambda: _z(1, 1, 8), int8=OK),
    "per_frame_conv": Entry(factory=PerFrameConv, example=lambda: _z(1, 1, 16), int8=OK),
    "clipped_relu_rnn": Entry(factory=ClippedReluRNN, example=lambda: _z(1, 1, 8), int8=OK),
    "looped_gru_cell": Entry(factory=LoopedGRUCell, example=lambda: _z(1, 1, 8)),
    "outputs_and_final_state": Entry(factory=OutputsAndFinalState, example=lambda: _z(1, 1, 8)),
    "denoising_cell_stack": Entry(
        factory=DenoisingCellStack,
        example=lambda: (_z(1, 8), ((_z(1, 16), _z(1, 16)), (_z(1, 16), _z(1, 16)))),
        axis=None,
        int8=OK,
    ),
}


# Untrained, the softmax is near uniform (probabilities 0.06..0.14): the int8 logits' error is
# 1.2% of that narrow range held out at export but up to 13% on one test seed (1.5% on another)
NEAR_UNIFORM = "int8 error peaks at 13% of a near-uniform softmax's narrow range on one seed"
ZOO.update(
    kws_softmax=Entry(
        factory=SoftmaxKeywordSpotter, example=lambda: _z(1, 1, 40), int8=NEAR_UNIFORM
    ),
    char_lm=Entry(
        factory=CharLM,
        example=lambda: torch.zeros(1, 1, dtype=torch.int64),
        int8=OK,
        ids=VOCAB,
    ),
    softplus_decay_cell=Entry(
        factory=SoftplusDecayCell, example=lambda: (_z(1, 8), _z(1, 16)), axis=None, int8=OK
    ),
)


def build(name: str) -> tuple[nn.Module, object, Entry]:
    entry = ZOO[name]
    torch.manual_seed(sum(map(ord, name)))
    return entry.factory().eval(), entry.example(), entry
