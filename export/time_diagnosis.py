"""Which part of a model makes one exported step differ from the model over time.

The model runs twice with a hook on every leaf module: once over the whole sequence, and once
step by step with its recurrent modules' states carried (what the exported step computes).
The first module, in the order the sequence run calls them, whose output at some step differs
between the two is where time leaks in: if its own input agrees (or is a window that grows
with the sequence, as a padded causal Conv1d's is), the module itself mixes time steps;
otherwise an op before it in the forward does (a pad, pool, mean, cumsum or flip over time).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from rnnedge.export.sequence_ref import RECURRENT, Carry, as_step_tensor


class _Record:
    """The first call's first input and first output of every leaf module, per run."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: dict[str, tuple[str, Any, Any]] = {}
        self.order: list[str] = []
        self.handles = [
            m.register_forward_hook(self._hook(p))
            for p, m in model.named_modules()
            if p and not list(m.children())
        ]

    def _hook(self, path: str):
        def hook(mod, args, out):
            if path in self.calls:
                return
            first_in = next((a for a in pytree.tree_leaves(args) if torch.is_tensor(a)), None)
            first_out = next((o for o in pytree.tree_leaves(out) if torch.is_tensor(o)), None)
            self.calls[path] = (type(mod).__name__, _np(first_in), _np(first_out))
            self.order.append(path)

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().numpy().copy()


def diagnose(model: nn.Module, x: torch.Tensor, seq: np.ndarray, axis: int, tol: float) -> str:
    """One clause naming the likely cause, or "" when no module shows it."""
    whole = _Record(model)
    try:
        with torch.no_grad():
            model(as_step_tensor(np.concatenate(list(seq), axis=axis)))
    finally:
        whole.close()
    steps = _stepped_records(model, seq)
    for path in whole.order:
        cls, seq_in, seq_out = whole.calls[path]
        outs = [s.get(path) for s in steps]
        if seq_out is None or any(o is None or o[2] is None for o in outs):
            continue
        t, err = _first_difference(seq_out, [o[2] for o in outs], tol)
        if t is None:
            continue
        ins = [o[1] for o in outs]
        grows = seq_in is not None and _grows(seq_in.shape, ins[0].shape, len(seq))
        in_t, _ = (None, 0.0) if seq_in is None else _first_difference(seq_in, ins, tol)
        if grows or (in_t is None and seq_in is not None and _has_time(seq_in, ins, len(seq))):
            return (
                f"{cls} '{path}' mixes time steps: over the sequence its output at step {t} "
                f"also depends on other steps (off by {err:.2e}), while one exported step "
                "sees only its own input"
            )
        return (
            f"{cls} '{path}' is the first module whose output differs over time (at step "
            f"{t}), but its input already does: an op before it in the forward mixes time "
            "steps (pad, conv, pool, mean, cumsum or flip over time)"
        )
    return ""


def _stepped_records(model: nn.Module, seq: np.ndarray) -> list[dict[str, tuple]]:
    paths = {p for p, m in model.named_modules() if isinstance(m, RECURRENT)}
    carry = Carry(model, paths)
    records = []
    try:
        with torch.no_grad():
            for x in seq:
                carry.begin_step()
                rec = _Record(model)
                try:
                    model(as_step_tensor(x))
                finally:
                    rec.close()
                records.append(rec.calls)
    finally:
        carry.close()
    return records


def _time_axis_of(whole: tuple[int, ...], one: tuple[int, ...], steps: int) -> int | None:
    if len(whole) != len(one):
        return None
    diff = [i for i, (p, q) in enumerate(zip(whole, one)) if p != q]
    if len(diff) == 1 and one[diff[0]] == 1 and whole[diff[0]] == steps:
        return diff[0]
    return 0 if steps == 1 and whole == one else None


def _has_time(whole: np.ndarray, per_step: list, steps: int) -> bool:
    return _time_axis_of(whole.shape, per_step[0].shape, steps) is not None


def _grows(whole: tuple[int, ...], one: tuple[int, ...], steps: int) -> bool:
    """A window over time: one axis is (steps - 1) longer over the sequence than at one step."""
    if len(whole) != len(one):
        return False
    diff = [i for i, (p, q) in enumerate(zip(whole, one)) if p != q]
    return len(diff) == 1 and whole[diff[0]] == one[diff[0]] + steps - 1 and one[diff[0]] > 1


def _first_difference(
    whole: np.ndarray, per_step: list[np.ndarray], tol: float
) -> tuple[int | None, float]:
    """The first step where the sequence run's slice and the stepped value differ."""
    ax = _time_axis_of(whole.shape, per_step[0].shape, len(per_step))
    if ax is None:
        return None, 0.0
    for t, v in enumerate(per_step):
        w = np.take(whole, [t], axis=ax)
        if w.shape != v.shape:
            return None, 0.0
        err = float(np.abs(w - v).max(initial=0.0)) / max(1.0, float(np.abs(w).max(initial=0.0)))
        if not err <= tol:
            return t, err
    return None, 0.0
