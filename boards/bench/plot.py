"""`rnnedge bench --plot FILE.png`: the latency CDF of every path, one panel per mode.
Needs matplotlib (`pip install 'rnnedge[plot]'`); imported only when a plot is asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnedge.boards.bench.run import BenchResult
from rnnedge.errors import InputError


def check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise InputError("--plot needs matplotlib: pip install 'rnnedge[plot]'") from e


def plot_cdf(result: BenchResult, path: Path) -> None:
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")  # no display on a board; never open a window
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(mode for _, mode in result.times_ns))
    names = list(dict.fromkeys(name for name, _ in result.times_ns))
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 4.8), squeeze=False)
    doc = result.doc
    for ax, mode in zip(axes[0], modes):
        for name in names:
            t = result.times_ns.get((name, mode))
            if t is None:
                continue
            us = np.sort(t) / 1e3
            frac = np.arange(1, len(us) + 1) / len(us)
            style = "-" if name.startswith("rnnedge") else "--"
            ax.step(us, frac, where="post", ls=style, color=colors[name], label=name)
        hop = doc["config"]["hop_ms"]
        ax.set_title(mode if mode == "back-to-back" else f"paced, one call every {hop:g} ms")
        ax.set_xscale("log")
        ax.set_xlabel("latency per call (us, log scale)")
        ax.set_ylabel("fraction of calls <= latency")
        ax.set_ylim(0, 1.01)
        for q in (0.5, 0.99):
            ax.axhline(q, color="0.8", lw=0.8, zorder=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    bundle = Path(doc["bundle"]["path"]).name
    fig.suptitle(
        f"{bundle} on {doc['board']['name']} ({doc['machine']['cpu_model']}), one thread, "
        f"{doc['created']}",
        fontsize=10,
    )
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise InputError(f"--plot {path}: cannot write ({e.strerror})") from e
    finally:
        plt.close(fig)
