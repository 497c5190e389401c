"""Streaming models with a convolutional front-end, for the int8 fidelity tests (issue 16):
a random conv -> LSTM cell whose h and c are stacked in one state tensor, and a VAD-like
model of the same shape trained on synthetic audio (tones and chirps vs noise)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
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


VAD_CHUNK = 64  # raw samples per step (8 ms at 8 kHz)
VAD_BINS = 8


class Vad(nn.Module):
    """A streaming voice-activity detector shaped like real ones: an STFT as a strided conv
    (real and imaginary parts), the power spectrum and its square root, two more convs with
    ReLU, an LSTM cell whose h and c are stacked in one state tensor, a sigmoid head.
    forward(x (B, VAD_CHUNK), state (2, B, H)) -> (p (B, 1), state)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.stft = nn.Conv1d(1, 2 * VAD_BINS, 32, stride=16, bias=False)
        self.c1 = nn.Conv1d(VAD_BINS, 16, 3, padding=1)
        self.c2 = nn.Conv1d(16, 16, 3, padding=1)
        self.cell = nn.LSTMCell(16 * 3, hidden)
        self.head = nn.Linear(hidden, 1)
        n = torch.arange(32, dtype=torch.float32)
        k = torch.arange(1, VAD_BINS + 1, dtype=torch.float32)[:, None] * 3
        win = torch.hann_window(32)
        with torch.no_grad():  # a fixed DFT basis, as an STFT front-end
            self.stft.weight.copy_(
                torch.cat(
                    [torch.cos(2 * torch.pi * k * n / 64), torch.sin(2 * torch.pi * k * n / 64)]
                )
                .mul(win)
                .unsqueeze(1)
            )
        self.stft.weight.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stft(x.unsqueeze(1))  # (B, 2 bins, 3)
        re, im = s[:, :VAD_BINS], s[:, VAD_BINS:]
        mag = torch.sqrt(re * re + im * im + 1e-4)
        z = torch.relu(self.c1(mag))
        return torch.relu(self.c2(z)).flatten(1)

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        h, c = self.cell(self.features(x), (state[0], state[1]))
        return torch.sigmoid(self.head(h)), torch.stack([h, c])


def vad_data(seed: int, count: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, steps, VAD_CHUNK) audio and (count, steps) labels: noise at a random level
    throughout, and bursts (tones and chirps at random pitch and loudness) labelled 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps * VAD_CHUNK)
    xs = np.zeros((count, steps * VAD_CHUNK), np.float32)
    ys = np.zeros((count, steps), np.float32)
    for i in range(count):
        xs[i] = rng.uniform(0.02, 0.3) * rng.standard_normal(len(t))
        start = int(rng.integers(0, steps // 4))
        while start < steps:
            length = int(rng.integers(steps // 10, steps // 3))
            end = min(start + length, steps)
            f0, f1 = rng.uniform(0.03, 0.35, size=2)  # cycles per sample: a tone or a chirp
            if rng.random() < 0.5:
                f1 = f0
            seg = t[start * VAD_CHUNK : end * VAD_CHUNK] - start * VAD_CHUNK
            freq = f0 + (f1 - f0) * seg / max(len(seg), 1)
            xs[i, start * VAD_CHUNK : end * VAD_CHUNK] += rng.uniform(0.3, 1.0) * np.sin(
                2 * np.pi * np.cumsum(freq)
            )
            ys[i, start:end] = 1
            start = end + int(rng.integers(steps // 10, steps // 3))
    return xs.reshape(count, steps, VAD_CHUNK), ys


def trained_vad(hidden: int = 32, iters: int = 120) -> Vad:
    """A Vad trained on 48-step streams. Training runs the front-end on every chunk at once
    and an nn.LSTM over time (one fused call; the same layout as the cell's weights, copied
    into the cell after), so it takes seconds."""
    torch.manual_seed(0)
    model = Vad(hidden)
    lstm = nn.LSTM(16 * 3, hidden, batch_first=True)
    params = [
        p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("cell.")
    ]
    opt = torch.optim.Adam([*params, *lstm.parameters()], lr=1e-2)
    xs, ys = vad_data(100, 64, 48)
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    for _ in range(iters):
        idx = torch.randint(0, len(x), (16,))
        z = model.features(x[idx].reshape(-1, VAD_CHUNK)).reshape(16, x.shape[1], -1)
        p = torch.sigmoid(model.head(lstm(z)[0]))[..., 0]
        loss = F.binary_cross_entropy(p, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(model.cell, name).copy_(getattr(lstm, f"{name}_l0"))
    return model.eval()


class RwkvNorm(nn.Module):
    """An RWKV-style time mix: the positive accumulators aa, bb and their running max pp
    (the numerically stable form of RWKV-4's wkv), decays spread so that bb ranges ~1..60
    across channels. forward(x (1, F), aa, bb, pp) -> (y (1, 4), aa, bb, pp)."""

    def __init__(self, features: int = 8, channels: int = 8) -> None:
        super().__init__()
        self.k = nn.Linear(features, channels)
        self.v = nn.Linear(features, channels)
        # (1, C): shaped like k, so no add broadcasts (a separate planner fix, not this test)
        self.w = nn.Parameter(-torch.linspace(0.017, 1.0, channels)[None])  # log decay a step
        self.u = nn.Parameter(0.3 * torch.ones(1, channels))
        self.out = nn.Linear(channels, 4)

    def forward(self, x, aa, bb, pp):
        k, v = torch.tanh(self.k(x)), self.v(x)
        ww = self.u + k
        p = torch.maximum(pp, ww)
        e1, e2 = torch.exp(pp - p), torch.exp(ww - p)
        wkv = (e1 * aa + e2 * v) / (e1 * bb + e2)
        ww = pp + self.w
        p = torch.maximum(ww, k)
        e1, e2 = torch.exp(ww - p), torch.exp(k - p)
        return self.out(wkv), e1 * aa + e2 * v, e1 * bb + e2, p


def rwkv_norm() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(3)
    z = lambda: torch.zeros(1, 8)  # noqa: E731  (distinct tensors: see the report)
    return RwkvNorm().eval(), (z(), z(), z(), z() - 30.0)
