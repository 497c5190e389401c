"""Small realistic models, one per op of issue 14, for the streamed parity tests
(tests/e2e/test_op_parity.py). Each is (factory, example, kind): "sequence" models run over the
whole sequence in PyTorch (their GRU/LSTM state is lifted); "cell" models take and return their
state, and PyTorch steps them with the state fed back."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

F_IN, H, VOCAB = 8, 16, 30


class Head(nn.Module):
    """GRU/LSTM over time (batch_first), a Linear head, then `act` on the logits."""

    def __init__(self, act: Callable[[torch.Tensor], torch.Tensor], lstm: bool = False) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if lstm else nn.GRU)(F_IN, H, batch_first=True)
        self.head, self.act = nn.Linear(H, 5), act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.head(self.rnn(x.float())[0]))  # x.float(): a no-op cast on float32


class HandGRU(nn.Module):
    """A hand-written GRU cell: `1 - z` with the constant first, `param + linear(x)`."""

    def __init__(self) -> None:
        super().__init__()
        self.x2g, self.h2g = nn.Linear(F_IN, 3 * H), nn.Linear(H, 3 * H, bias=False)
        self.bias = nn.Parameter(torch.randn(3 * H) * 0.1)
        self.out = nn.Linear(H, 4)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gx = self.bias + self.x2g(x)
        r, z, n = (gx + self.h2g(h)).chunk(3, dim=-1)
        z = torch.sigmoid(z)
        h = (1 - z) * torch.tanh(n * torch.sigmoid(r)) + z * h
        return self.out(h), h


class MixedState(nn.Module):
    """h' = a*h + b*tanh(Wx) (taken for an LSTM cell by the int8 planner) read by a Linear with
    a bias, then softplus: a positive rate."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.head = nn.Linear(F_IN, H), nn.Linear(H, 3)
        self.a = nn.Parameter(torch.rand(H) * 0.5 + 0.45)
        self.b = nn.Parameter(torch.rand(H) * 0.5 + 0.25)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.a * h + self.b * torch.tanh(self.inp(x))
        return F.softplus(self.head(h), beta=2.0), h


class Einsum(nn.Module):
    """GRU state mixed by einsums: with a weight (a matmul: `linear`) and with another
    activation (a batched matmul of two activations: `matmul`)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(F_IN, H, batch_first=True)
        self.w = nn.Parameter(torch.randn(H, H) / H**0.5)
        self.out = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.rnn(x)[0]  # (1, T, H)
        k = torch.einsum("bti,ij->btj", h, self.w)  # a bmm with a constant weight
        q = h.reshape(*h.shape[:2], 4, 4)
        att = torch.einsum("btij,btjk->btik", q, k.reshape(q.shape))  # two activations
        return self.out(att.sum(-1))


class CharLM(nn.Module):
    """A character LM: token ids -> Embedding -> GRU -> Linear -> log_softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, F_IN)
        self.rnn = nn.GRU(F_IN, H, batch_first=True)
        self.out = nn.Linear(H, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.out(self.rnn(self.emb(ids))[0]), -1)


def _seq(act, lstm=False):
    return lambda: Head(act, lstm)


def _x(*shape: int) -> torch.Tensor:
    return torch.zeros(*shape)


MODELS = {
    "softmax-head": (_seq(lambda v: torch.softmax(v, -1)), lambda: _x(1, 1, F_IN), "sequence"),
    "log_softmax-head": (
        _seq(lambda v: F.log_softmax(v, -1), lstm=True),
        lambda: _x(1, 1, F_IN),
        "sequence",
    ),
    "softplus-head": (_seq(F.softplus), lambda: _x(1, 1, F_IN), "sequence"),
    "hand-gru": (HandGRU, lambda: (_x(1, F_IN), _x(1, H)), "cell"),
    "mixed-state-softplus": (MixedState, lambda: (_x(1, F_IN), _x(1, H)), "cell"),
    "einsum": (Einsum, lambda: _x(1, 1, F_IN), "sequence"),
    "char-lm-int64": (CharLM, lambda: torch.zeros(1, 1, dtype=torch.int64), "sequence"),
    "char-lm-int32": (CharLM, lambda: torch.zeros(1, 1, dtype=torch.int32), "sequence"),
}
