"""Models with convolutions over time (issue 15, part 1), run by the user over whole
sequences (B, T, F): causal Conv1d + GRU in the ways users write causal padding, a CRNN
keyword spotter (Conv2d over time x mel) and a two-conv TCN front-end; and the ones a stream
cannot run (right context, stride or pooling over time). Tests only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

F_IN = 6  # features per step of the Conv1d models
MELS = 10  # mel bins per step of the CRNN


class CausalConvGRU(nn.Module):
    """A causal Conv1d over time in front of a GRU, padded one of three ways:
    "slice": nn.Conv1d(padding=p) then y[..., :-p]; "pad": F.pad(x, (p, 0)); "const":
    nn.ConstantPad1d((p, 0), 0.5), a pad value that is not zero."""

    def __init__(self, k: int = 3, dilation: int = 1, style: str = "pad") -> None:
        super().__init__()
        self.p, self.style = (k - 1) * dilation, style
        padding = self.p if style == "slice" else 0
        self.frontend = nn.Module()
        self.frontend.conv = nn.Conv1d(F_IN, 8, k, padding=padding, dilation=dilation)
        self.frontend.pad = nn.ConstantPad1d((self.p, 0), 0.5)
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):  # (B, T, F_IN)
        c = x.transpose(1, 2)
        if self.style == "slice":
            c = self.frontend.conv(c)[..., : -self.p]
        elif self.style == "pad":
            c = self.frontend.conv(F.pad(c, (self.p, 0)))
        else:
            c = self.frontend.conv(self.frontend.pad(c))
        out, _ = self.gru(torch.relu(c.transpose(1, 2)))
        return self.head(out)


class CRNNSpotter(nn.Module):
    """A keyword spotter: Conv2d over (time, mel) padded causally in time (ZeroPad2d, which
    also pads the mel axis), a second Conv2d dilated in time, a GRU, a softmax head."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 1, 2, 0))  # (mel left, mel right, time before, after)
        self.conv1 = nn.Conv2d(1, 4, (3, 3))
        self.conv2 = nn.Conv2d(4, 4, (2, 3), stride=(1, 2), padding=(2, 1), dilation=(2, 1))
        self.gru = nn.GRU(4 * 5, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):  # (B, T, MELS)
        c = torch.relu(self.conv1(self.pad(x.unsqueeze(1))))  # (B, 4, T, MELS)
        c = torch.relu(self.conv2(c)[:, :, :-2])  # (B, 4, T, MELS / 2)
        out, _ = self.gru(c.permute(0, 2, 1, 3).flatten(2))
        return torch.softmax(self.head(out), dim=-1)


class TCNFrontEnd(nn.Module):
    """Two causal dilated Conv1d (d = 1, 2) with a residual, then a GRU: two buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.tcn = nn.ModuleList([nn.Conv1d(F_IN, 8, 3), nn.Conv1d(8, 8, 3, dilation=2)])
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):  # (B, T, F_IN)
        c = torch.relu(self.tcn[0](F.pad(x.transpose(1, 2), (2, 0))))
        c = c + torch.relu(self.tcn[1](F.pad(c, (4, 0))))
        out, _ = self.gru(c.transpose(1, 2))
        return self.head(out)


class CenteredConv(nn.Module):
    """ "same" padding over time: the output at t reads frame t + 1."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Module()
        self.enc.conv = nn.Conv1d(F_IN, 8, 5, padding=2)
        self.gru = nn.GRU(8, 16, batch_first=True)

    def forward(self, x):
        return self.gru(self.enc.conv(x.transpose(1, 2)).transpose(1, 2))[0]


class StridedConv(nn.Module):
    """A causal conv that downsamples time by 2."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv1d(F_IN, 8, 3, stride=2)
        self.gru = nn.GRU(8, 16, batch_first=True)

    def forward(self, x):
        return self.gru(self.down(F.pad(x.transpose(1, 2), (2, 0))).transpose(1, 2))[0]


class PooledOverTime(nn.Module):
    """A max pool over (time, mel) after a causal Conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, (3, 3), padding=(2, 1))
        self.pool = nn.MaxPool2d((2, 2), padding=(1, 0))
        self.gru = nn.GRU(4 * 5, 16, batch_first=True)

    def forward(self, x):
        c = self.pool(self.conv(x.unsqueeze(1))[:, :, :-2])
        return self.gru(c.permute(0, 2, 1, 3).flatten(2))[0]


class PooledNoPadding(nn.Module):
    """nn.MaxPool1d(2) over time after a causal conv: at one frame it cannot even run."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(F_IN, 8, 3)
        self.pool = nn.MaxPool1d(2)
        self.gru = nn.GRU(8, 16, batch_first=True)

    def forward(self, x):
        c = self.pool(self.conv(F.pad(x.transpose(1, 2), (2, 0))))
        return self.gru(c.transpose(1, 2))[0]


class BiConvTagger(nn.Module):
    """A causal dilated conv in front of a bidirectional GRU: an offline program whose first
    (forward) stage carries the conv's buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(F_IN, 8, 3, dilation=2)
        self.rnn = nn.GRU(8, 8, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        c = torch.relu(self.conv(F.pad(x.transpose(1, 2), (4, 0)))).transpose(1, 2)
        return self.head(self.rnn(c)[0])
