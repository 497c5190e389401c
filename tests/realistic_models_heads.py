"""Realistic zoo models that use the ops issue 14 added (softmax / log_softmax heads, an
Embedding on token ids, softplus): merged into realistic_models.ZOO."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 40


class SoftmaxKeywordSpotter(nn.Module):
    """40 log-mel features per frame -> dense -> GRU -> softmax over 12 keywords per frame."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend = nn.Sequential(nn.Linear(40, 32), nn.ReLU())
        self.gru = nn.GRU(32, 48, batch_first=True)
        self.head = nn.Linear(48, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.gru(self.frontend(x))[0]), dim=-1)


class CharLM(nn.Module):
    """Character ids -> Embedding -> 2-layer LSTM -> log-probabilities of the next character."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 24)
        self.lstm = nn.LSTM(24, 48, num_layers=2, batch_first=True)
        self.out = nn.Linear(48, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.out(self.lstm(self.emb(ids))[0]), dim=-1)


class SoftplusDecayCell(nn.Module):
    """A selective-decay cell (Mamba-like, hand-written): dt = softplus(W x), the state decays
    by exp(-dt) towards tanh(U x)."""

    def __init__(self) -> None:
        super().__init__()
        self.dt = nn.Linear(8, 16)
        self.inp = nn.Linear(8, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decay = torch.exp(-F.softplus(self.dt(x)))
        h = decay * h + (1 - decay) * torch.tanh(self.inp(x))
        return self.out(h), h
