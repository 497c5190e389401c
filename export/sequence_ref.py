"""The user's model run the way the user runs it, over T steps: the reference the exported
step must equal over time (export/sequence_gate.py holds the step to it).

- A streamified model (forward(x) runs nn.GRU/LSTM/RNN over time) is run ONCE over the whole
  sequence, the steps joined along its time axis: the axis along which its recurrent modules
  see the steps (or, without any, along which its output remembers earlier steps).
- A model that takes its state is called step by step with its own state outputs fed back.

When a model cannot run over a whole sequence (a forward that reshapes x to one step's size),
it is stepped instead, with its recurrent modules' states carried from call to call by hooks
(`Carry`): what streamify promises, computed by the user's own eager modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

PROBE_STEPS = 4
# An output of the last step only is read from a run over every prefix: T runs of up to T
# steps. Beyond this many steps the model is stepped instead (its recurrent states carried).
MAX_PREFIX_STEPS = 256
RECURRENT = (nn.RNNBase, nn.RNNCellBase)


@dataclass(frozen=True)
class Reference:
    """Per sequence, each data output at every step: (T, *step shape)."""

    outputs: list[list[np.ndarray]]
    how: str  # "over the whole sequence" or "stepped, ..."
    time_axis: int | None  # of the step input, when run over the whole sequence
    note: str = ""  # why a streamified model was stepped instead


class Carry:
    """Hooks that carry the state of the recurrent modules named in `paths` from one call to
    the next (by module and call order within a step), replacing the constant initial state
    the model passes them, exactly as streamify lifts it. `begin_step()` before each step."""

    def __init__(self, model: nn.Module, paths: set[str]) -> None:
        self.states: dict[tuple[str, int], Any] = {}
        self.calls: dict[str, int] = {}
        self.handles = []
        for path, mod in model.named_modules():
            if isinstance(mod, RECURRENT) and path in paths:
                self.handles.append(
                    mod.register_forward_pre_hook(self._pre(path), with_kwargs=True)
                )
                self.handles.append(mod.register_forward_hook(self._post(path)))

    def begin_step(self) -> None:
        self.calls = {}

    def close(self) -> None:
        for h in self.handles:
            h.remove()

    def _pre(self, path: str):
        def hook(mod, args, kwargs):
            key = (path, self.calls.get(path, 0))
            if key not in self.states:
                return None
            kwargs = {k: v for k, v in kwargs.items() if k != "hx"}
            return (args[0], self.states[key]), kwargs

        return hook

    def _post(self, path: str):
        def hook(mod, args, out):
            n = self.calls.get(path, 0)
            self.calls[path] = n + 1
            self.states[(path, n)] = out[1] if isinstance(mod, nn.RNNBase) else out

        return hook


def lifted_paths(model: nn.Module, lifted_names: list[str]) -> set[str]:
    """The recurrent modules whose state capture lifted, from the lifted state names:
    "<module path>.h" / ".c", or "<kind>.h" for a model that is itself the RNN."""
    paths = set()
    for path, mod in model.named_modules():
        if not isinstance(mod, RECURRENT):
            continue
        heads = {n.rsplit(".", 1)[0] for n in lifted_names}
        if (path and path in heads) or (
            not path and heads & {"gru", "lstm", "rnn_tanh", "rnn_relu"}
        ):
            paths.add(path)
    return paths


def stepped(
    model: nn.Module, args: tuple, seq: np.ndarray, n_out: int, carry_paths: set[str]
) -> list[np.ndarray]:
    """The model called once per step, its explicit state outputs (the last leaves of its
    output) fed back as its state arguments, recurrent modules in `carry_paths` carried.
    Returns each of the n_out data outputs at every step: (T, *shape)."""
    leaves, spec = pytree.tree_flatten(args[1:])
    states = [t.detach().clone() for t in leaves]
    rows: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    carry = Carry(model, carry_paths)
    try:
        with torch.no_grad():
            for x in seq:
                carry.begin_step()
                out = model(as_step_tensor(x), *pytree.tree_unflatten(states, spec))
                outs = pytree.tree_leaves(out)
                states = [o.detach() for o in outs[len(outs) - len(leaves) :]]
                for row, o in zip(rows, outs[: len(outs) - len(leaves)]):
                    row.append(o.detach().numpy().astype(np.float32))
    finally:
        carry.close()
    return [np.stack(r) for r in rows]


@contextmanager
def count_recurrent_steps(model: nn.Module) -> Iterator[dict[str, int]]:
    """Per recurrent module, how many time steps it processed while the block ran."""
    seen: dict[str, int] = {}

    def hook(path: str):
        def pre(mod, args):
            x = args[0]
            steps = 1
            if isinstance(mod, nn.RNNBase):
                steps = x.shape[1 if mod.batch_first and x.dim() == 3 else 0]
            seen[path] = seen.get(path, 0) + int(steps)

        return pre

    handles = [
        m.register_forward_pre_hook(hook(p))
        for p, m in model.named_modules()
        if isinstance(m, RECURRENT)
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def run_model(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.detach() for t in pytree.tree_leaves(model(x))]


def _probe_sequence(x: torch.Tensor, a: int, rng: np.random.Generator) -> torch.Tensor:
    """PROBE_STEPS steps joined along axis a: N(0, 1), or for token ids the example's own ids
    repeated (the only ids known to be inside the table)."""
    if not x.is_floating_point():
        return x.repeat_interleave(PROBE_STEPS, dim=a)
    shape = [PROBE_STEPS if i == a else n for i, n in enumerate(x.shape)]
    return torch.from_numpy(rng.standard_normal(shape)).to(torch.float32)


def time_axis(model: nn.Module, x: torch.Tensor) -> int | None:
    """The axis of the step input along which the model reads time, or None when none fits:
    the axis along which its recurrent modules see PROBE_STEPS steps when PROBE_STEPS steps
    are joined along it; a model without recurrent modules, the axis along which its output
    remembers the first step (a Python loop over time), else the first candidate."""
    candidates = [a for a in range(max(1, x.dim() - 1)) if x.shape[a] == 1]
    with count_recurrent_steps(model) as one:
        run_model(model, x)
    rng = np.random.default_rng(0)
    runnable = []
    for a in candidates:
        seq = _probe_sequence(x, a, rng)
        try:
            with count_recurrent_steps(model) as many:
                run_model(model, seq)
        except Exception:  # a forward that cannot take T steps along this axis
            continue
        if one and all(many.get(p, 0) == PROBE_STEPS * n for p, n in one.items()):
            return a
        if not one:
            runnable.append((a, seq))
    for a, seq in runnable:
        if _remembers(model, seq, a):
            return a
    return runnable[0][0] if runnable else None


def _remembers(model: nn.Module, seq: torch.Tensor, axis: int) -> bool:
    """Whether changing the first step changes any output at a later step."""
    nudged = seq.clone()
    first = nudged.narrow(axis, 0, 1)
    if seq.is_floating_point():
        first.add_(1.0)
    else:  # token ids: another id, 0 or 1, both inside any table of two or more rows
        first.copy_((first == 0).to(seq.dtype))
    try:
        a, b = run_model(model, seq), run_model(model, nudged)
    except Exception:  # as above
        return False
    n = seq.shape[axis]
    return any(
        p.dim() > axis
        and p.shape[axis] == n
        and p.shape == q.shape
        and not torch.equal(p.narrow(axis, 1, n - 1), q.narrow(axis, 1, n - 1))
        for p, q in zip(a, b)
    )


def over_sequence(
    model: nn.Module, seq: np.ndarray, axis: int, step_shapes: list[tuple[int, ...]]
) -> list[np.ndarray] | str:
    """The model run once over `seq` (T, *step shape), the steps joined along `axis`: each data
    output at every step (T, *step shape), or why its outputs cannot be read per step. An
    output without a time axis (the last step's, e.g. `head(out[:, -1])`) is read from runs
    over every prefix of the sequence."""
    joined = as_step_tensor(np.concatenate(list(seq), axis=axis))
    outs = run_model(model, joined)
    if len(outs) != len(step_shapes):
        return f"it returns {len(outs)} tensors over a sequence but {len(step_shapes)} at one step"
    per_step: list[np.ndarray | None] = []
    for o, shape in zip(outs, step_shapes):
        got = _per_step(o, shape, len(seq))
        if isinstance(got, str):
            return got
        per_step.append(got)
    if any(p is None for p in per_step) and len(seq) > MAX_PREFIX_STEPS:
        return f"an output holds the last step only and the sequence has {len(seq)} steps"
    for i, shape in enumerate(step_shapes):
        if per_step[i] is None:
            prefixes = [run_model(model, joined.narrow(axis, 0, t + 1))[i] for t in range(len(seq))]
            per_step[i] = np.stack([p.numpy().reshape(shape) for p in prefixes])
    return [np.asarray(p, np.float32) for p in per_step]


def _per_step(o: torch.Tensor, shape: tuple[int, ...], steps: int) -> np.ndarray | str | None:
    """(T, *shape) from an output over T steps, None when it holds only the last step."""
    have = tuple(o.shape)
    if have == tuple(shape):
        return o.numpy()[None] if steps == 1 else None
    diff = [i for i, (p, q) in enumerate(zip(have, shape)) if p != q]
    if len(have) != len(shape) or len(diff) != 1 or have[diff[0]] != steps:
        return f"an output is {list(have)} over {steps} steps and {list(shape)} at one step"
    return np.stack([o.narrow(diff[0], t, 1).numpy() for t in range(steps)])


def as_step_tensor(a: np.ndarray) -> torch.Tensor:
    """Step data as the model takes it: token ids keep their integer dtype, the rest float32."""
    a = np.asarray(a)
    return torch.from_numpy(a.copy() if a.dtype.kind in "iu" else a.astype(np.float32))
