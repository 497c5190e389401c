"""`rnnedge check --plot FILE.png`: the error curve over steps, one panel per output (and
state), one line per backend x precision, budgets dashed. matplotlib is imported only here,
only when a plot is asked for (pip install 'rnnedge[plot]')."""

from __future__ import annotations

import os

import numpy as np

from rnnedge.errors import InputError
from rnnedge.runtime.check.metrics import budget_for
from rnnedge.runtime.check.report import REFERENCES
from rnnedge.runtime.check.run import CheckReport

FLOOR = 1e-12  # a log axis cannot show an exact 0; such steps are drawn at this floor
MAX_PANELS = 8
MAX_POINTS = 400  # longer curves are drawn as their envelope (max per bin)
COLORS = {"litert": "tab:blue", "onnxruntime": "tab:orange", "numpy": "tab:green"}
STYLES = {"float": "-", "int8": "--", "int8-dynamic": ":"}


def write_plot(report: CheckReport, path: str | os.PathLike) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a board or in CI
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise InputError("--plot needs matplotlib: pip install 'rnnedge[plot]'") from e
    names = [t.name for t in report.bundle.graph.outputs][:MAX_PANELS]
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.4 * len(names) + 0.8), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names):
        _panel(ax, report, name)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # the same lines in every panel: one legend, below them all
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    xlabel = "step (state carried)" if report.looped else "step within sequence"
    longest = max((m.curve.size for r in report.results for m in r.outputs), default=0)
    if longest > MAX_POINTS:
        xlabel += f"; max per {-(-longest // MAX_POINTS)}-step bin"
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(
        f"{report.bundle.path.name}: max abs error per step vs {REFERENCES[report.reference]}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _envelope(curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Long curves as the max over MAX_POINTS bins: every peak stays visible, and lines of
    several backends do not merge into one band."""
    if curve.size <= MAX_POINTS:
        return np.arange(curve.size), curve
    size = -(-curve.size // MAX_POINTS)
    pad = np.pad(curve, (0, -curve.size % size), constant_values=-np.inf)
    return np.arange(0, curve.size, size) + size // 2, pad.reshape(-1, size).max(axis=1)


def _abs_limit(budget: dict[str, float], m) -> float | None:
    """The budget's limit on this output as an absolute error, the curve's unit: a
    scaled_abs_err limit is relative to max(1, max |ref|) of this output."""
    limits = []
    if "max_abs_err" in budget:
        limits.append(budget["max_abs_err"])
    if "scaled_abs_err" in budget:
        limits.append(budget["scaled_abs_err"] * m.ref_scale)
    return min(limits, default=None)


def _panel(ax, report: CheckReport, name: str) -> None:
    budgets_drawn = set()
    for r in report.results:
        m = next((m for m in r.outputs if m.name == name), None)
        if m is None or m.curve.size == 0:
            continue
        x, y = _envelope(m.curve)
        ax.plot(
            x,
            np.maximum(y, FLOOR),
            STYLES.get(r.precision, "-"),
            color=COLORS.get(r.backend),
            linewidth=0.9,
            label=f"{r.backend}/{r.precision}",
        )
        limit = _abs_limit(budget_for(r.budget, m.name), m)
        if limit and (r.precision, limit) not in budgets_drawn:
            budgets_drawn.add((r.precision, limit))
            ax.axhline(
                limit,
                color="tab:red",
                linestyle=STYLES.get(r.precision, "--") if r.precision != "float" else "--",
                linewidth=0.8,
                label=f"{r.precision} budget",
            )
            ax.annotate(
                f"{r.precision} budget {limit:.2g}",
                (0, limit),
                fontsize=7,
                color="tab:red",
                xycoords=("axes fraction", "data"),
                xytext=(3, -10),
                textcoords="offset points",
            )
    kind = "output" if name in {t.name for t in report.bundle.graph.data_outputs} else "state"
    ax.set_yscale("log")
    if budgets_drawn:  # room above the highest budget line, so it never sits on the frame
        ax.set_ylim(top=max(ax.get_ylim()[1], 2 * max(limit for _, limit in budgets_drawn)))
    ax.set_ylabel("max abs error")
    ax.set_title(f"{kind} {name}", fontsize=9, loc="left")
    ax.grid(True, which="major", alpha=0.3)
