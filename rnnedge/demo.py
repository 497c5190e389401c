"""`rnnedge demo`: train a small GRU on a real dataset, export it, stream it on every backend.

The dataset is scikit-learn's handwritten digits (1,797 images, shipped inside the package):
each 8x8 image is read as a sequence of 8 rows of 8 features, one row per time step, and the
GRU's output at the last row classifies the digit. Needs the `export` and `demo` extras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnedge.boards.bench.latency import LatencyStats
from rnnedge.progress import Progress
from rnnedge.runtime import available_backends, load
from rnnedge.runtime.model import Model

EPOCHS = 30
HIDDEN = 64
CALIBRATION_IMAGES = 200  # training images, each a sequence of 8 rows


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)  # (N, 8 rows, 8 columns), scaled to [0, 1]
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], d.target[order]
    n_train = int(0.8 * len(x))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def make_model():
    import torch
    from torch import nn

    class DigitsGRU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(8, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.gru(x)  # no state argument: rnnedge lifts it ("streamify")
            return self.head(out)  # logits at every step; the last row's classify

    return DigitsGRU()


def train(x: np.ndarray, y: np.ndarray, say: Progress):
    import torch

    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx])[:, -1], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (epoch + 1) % 10 == 0:
            say(f"epoch {epoch + 1}/{EPOCHS}: loss {loss.item():.3f}")
    return model.eval()


def stream_accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """Each image streamed row by row through a fresh stream; the last row's logits decide."""
    stream, hits = model.stream(), 0
    for img, label in zip(x, y):
        stream.reset()
        logits = stream.run(img[:, None, None, :])[-1]
        hits += int(np.argmax(logits) == label)
    return hits / len(x)


def run_demo(out_dir: str, *, steps: int = 5000, progress: Progress | None = None) -> str:
    import torch

    from rnnedge.boards.bench.latency import measure, raw_call, stream_call
    from rnnedge.export.pipeline import export_bundle

    say = progress or (lambda _m: None)
    x_train, y_train, x_test, y_test = _digits()
    say(f"digits: {len(x_train)} train / {len(x_test)} test images as 8 steps of 8 features")
    model = train(x_train, y_train, say)
    with torch.no_grad():
        torch_acc = float(
            (model(torch.from_numpy(x_test))[:, -1].argmax(-1).numpy() == y_test).mean()
        )
    path = export_bundle(
        model,
        torch.zeros(1, 1, 8),
        Path(out_dir) / "digits.rnnedge",
        quantize="int8",  # full integer, next to float in the same bundle
        calibration=[img[:, None, None, :] for img in x_train[:CALIBRATION_IMAGES]],
        golden=x_test[:4],
        task={"kind": "classification"},  # lets `rnnedge check` report argmax agreement
        progress=say,
    )
    rows = [f"PyTorch (whole sequence)   accuracy {torch_acc:.4f}", ""]
    rows.append("latency per step in microseconds (p50 / p99), one thread, state carried:")
    header = ("backend", "precision", "accuracy", "checked", "unchecked", "raw call", "overhead")
    rows.append("{:12s} {:9s} {:>9s} {:>15s} {:>15s} {:>15s} {:>14s}".format(*header))
    x = np.zeros((1, 1, 8), np.float32)
    for name, precision in [(b, p) for b in available_backends() for p in ("float", "int8")]:
        m = load(path, backend=name, precision=precision)
        acc = stream_accuracy(m, x_test, y_test)
        say(f"{name} {precision}: accuracy {acc:.4f}; timing {steps} steps")
        checked = measure(stream_call(m, x), steps)
        unchecked = measure(stream_call(m, x, checked=False), steps)
        raw = raw_call(m, x)
        raw_stats = measure(raw, steps) if raw else None
        cols = [_pct(checked), _pct(unchecked), _pct(raw_stats)]
        ratio = (
            f"{checked.p50 / raw_stats.p50:.2f}x / {unchecked.p50 / raw_stats.p50:.2f}x"
            if raw_stats
            else "-"
        )
        rows.append(
            f"{name:12s} {precision:9s} {acc:9.4f} {cols[0]:>15s} {cols[1]:>15s} {cols[2]:>15s} "
            f"{ratio:>14s}"
        )
    rows.append("")
    rows.append(f"bundle: {path}")
    rows.append(
        "raw call: the bare interpreter calls on the same file (set_tensor+invoke+get_tensor,"
    )
    rows.append(
        "session.run); overhead: rnnedge checked / unchecked step p50 over the raw call p50."
    )
    return "\n".join(rows)


def _pct(stats: LatencyStats | None) -> str:
    return f"{stats.p50:.1f} / {stats.p99:.1f}" if stats else "-"
