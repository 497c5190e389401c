"""Realistic models that one exported step cannot reproduce: rnnedge must refuse each with one
clear line (`match`) and write nothing, never export it silently wrong (tests only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class Refused:
    factory: Callable[[], nn.Module]
    example: Callable[[], object]
    match: str  # regex the error's message must match


class CenteredConvGRU(nn.Module):
    """A "same"-padded Conv1d over time reads the NEXT frame too: no stream can compute it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, kernel_size=3, padding=1)
        self.gru = nn.GRU(8, 16, batch_first=True)

    def forward(self, x):  # (B, T, 4)
        out, _ = self.gru(torch.tanh(self.conv(x.transpose(1, 2)).transpose(1, 2)))
        return out


class UtteranceNorm(nn.Module):
    """Mean normalisation over the whole utterance (time axis), then a GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        out, _ = self.gru(x - x.mean(dim=1, keepdim=True))
        return self.head(out)


class LoopedHandGRU(nn.Module):
    """A hand-written recurrence in a Python loop over time, state started at zeros inside
    forward: traced at one step it keeps no state at all."""

    def __init__(self) -> None:
        super().__init__()
        self.x2, self.h2 = nn.Linear(8, 16), nn.Linear(16, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        h = torch.zeros(x.shape[0], 16)
        outs = []
        for t in range(x.shape[1]):
            h = torch.tanh(self.x2(x[:, t]) + self.h2(h))
            outs.append(self.head(h))
        return torch.stack(outs, dim=1)


class LSTMCellModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(8, 16)

    def forward(self, x, h, c):
        h, c = self.cell(x, (h, c))
        return h, h, c


class GRUCellModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(8, 8)

    def forward(self, x, h):
        h = self.cell(x, h)
        return h, h


def _aliased_state() -> tuple:
    h0 = torch.zeros(1, 16)
    return (torch.zeros(1, 8), h0, h0)


def _aliased_input() -> tuple:
    z = torch.zeros(1, 8)
    return (z, z)


ALIAS = r"example inputs \d and \d are the same tensor .*pass distinct tensors"
REFUSED: dict[str, Refused] = {
    "centered_conv_gru": Refused(
        factory=CenteredConvGRU,
        example=lambda: torch.zeros(1, 1, 4),
        match=r"^Conv1d 'conv' is not causal: its output at step t reads 1 frame\(s\) after t",
    ),
    "utterance_mean_norm": Refused(
        factory=UtteranceNorm,
        example=lambda: torch.zeros(1, 1, 8),
        match=r"^the exported step strays .*GRU 'gru'.* an op before it in the forward mixes time",
    ),
    "looped_hand_gru": Refused(
        factory=LoopedHandGRU,
        example=lambda: torch.zeros(1, 1, 8),
        match=r"^the exported step strays .*remembers earlier steps but the captured step keeps no",
    ),
    "aliased_lstm_cell_state": Refused(factory=LSTMCellModel, example=_aliased_state, match=ALIAS),
    "aliased_input_and_state": Refused(factory=GRUCellModel, example=_aliased_input, match=ALIAS),
}
