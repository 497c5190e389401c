"""Streaming models with a convolutional front-end, for the int8 fidelity tests (issue 16):
a random conv -> LSTM cell whose h and c are stacked in one state tensor, and a VAD-like
model of the same shape trained on synthetic audio (tones and chirps vs noise)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CHUNK = 32  # raw samples per step


class ConvLstm(nn.Module):
    """forward(x (1, CHUNK), state (2, 1, H)) -> (p (1, 1), state): two strided convs with
    ReLU, an LSTM cell whose h and c are stacked into one state, a sigmoid head."""

    def __init__(self, hidden: int = 24) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(1, 8, 5, stride=2)
        self.c2 = nn.Conv1d(8, 8, 3, stride=2)
        self.cell = nn.LSTMCell(8 * 6, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        z = torch.relu(self.c1(x.unsqueeze(1)))
        z = torch.relu(self.c2(z)).flatten(1)
        h, c = self.cell(z, (state[0], state[1]))
        return torch.sigmoid(self.head(h)), torch.stack([h, c])


def conv_lstm(seed: int, hidden: int = 24) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(seed)
    return ConvLstm(hidden).eval(), (torch.zeros(1, CHUNK), torch.zeros(2, 1, hidden))


def noise_sequences(seed: int, count: int, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((steps, 1, CHUNK)).astype(np.float32) for _ in range(count)]
