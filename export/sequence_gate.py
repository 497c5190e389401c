"""The sequence-level gate: the exported float step, stepped T times with its state carried,
must give what the user's model gives run the way the user runs it (export/sequence_ref.py).

The float parity gate (gates.parity) compares backends with a PyTorch reference; when that
reference is the captured ONE-step program, anything the one-step capture gets wrong about
time (a mean over the utterance, a loop over time that a one-step trace unrolls once; before
convs over time got their buffers, a causal Conv1d that saw only zeros for its past) passes
it. So the reference here is the model itself over whole sequences, golden.npz records it,
and a step that strays from it is refused with the likely cause (export/time_diagnosis.py),
before any file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree

from rnnedge.errors import ExportError
from rnnedge.export.sequence_ref import (
    RECURRENT,
    Reference,
    lifted_paths,
    over_sequence,
    stepped,
    time_axis,
)
from rnnedge.export.time_diagnosis import diagnose
from rnnedge.progress import Progress
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.inputs import sample_input

MIN_STEPS = 32  # the gate runs every model over at least this many steps
# As gates.FLOAT_GATE: relative to max(1, |reference|). Over 3 x 64 steps the numpy float step
# and the model run as the user runs it measured <= 3.6e-7 on the 39 models of tests/models.py
# and tests/realistic_models.py; a model that mixes time steps is off by 7e-3..2e-1 (a causal
# Conv1d, a mean over the utterance, a Python loop over time).
SEQUENCE_GATE = 1e-4


@dataclass(frozen=True)
class Mismatch:
    output: str
    sequence: int
    step: int
    err: float


def reference(
    model: torch.nn.Module, example: Any, graph: Graph, sequences: list[np.ndarray]
) -> Reference:
    """The user's model over each sequence, run as the user runs it (see sequence_ref)."""
    args = example if isinstance(example, tuple) else (example,)
    n_explicit = len(pytree.tree_leaves(args[1:]))
    shapes = [t.shape for t in graph.data_outputs]
    lifted = [s.input for s in graph.states[n_explicit:]]
    was_training = model.training
    model.eval()
    try:
        if n_explicit:
            carry = lifted_paths(model, lifted)
            how = "stepped with its own states fed back"
            return Reference(
                [stepped(model, args, s, len(shapes), carry) for s in sequences], how, None
            )
        axis = time_axis(model, args[0])
        why = "no axis of the step input reads as time" if axis is None else ""
        if axis is not None:
            try:
                outs = [over_sequence(model, s, axis, shapes) for s in sequences]
            except Exception as e:  # any forward that cannot take T steps
                outs = [f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"]
            why = next((o for o in outs if isinstance(o, str)), "")
            if not why:
                return Reference(outs, "over the whole sequence", axis)  # type: ignore[arg-type]
        carry = lifted_paths(model, lifted) | _all_recurrent(model)
        runs = [stepped(model, args, s, len(shapes), carry) for s in sequences]
        return Reference(runs, "stepped, its recurrent states carried", None, note=why)
    finally:
        model.train(was_training)


def _all_recurrent(model: torch.nn.Module) -> set[str]:
    return {p for p, m in model.named_modules() if isinstance(m, RECURRENT)}


def check_over_time(
    model: torch.nn.Module,
    example: Any,
    graph: Graph,
    sequences: list[np.ndarray],
    ref: Reference,
    gate: float,
    say: Progress,
) -> None:
    """Refuses (ExportError) when the numpy float step, state carried, strays from `ref` by
    more than `gate` (relative to max(1, |reference|)) on any data output at any step."""
    if ref.note:
        say(f"  the model cannot run over a whole sequence ({ref.note}): checked stepped instead")
    worst = first_mismatch(graph, sequences, ref, gate)
    steps = sum(len(s) for s in sequences)
    if worst is None:
        say(f"  float step over {len(sequences)} sequences ({steps} steps) {ref.how}: matches")
        return
    args = example if isinstance(example, tuple) else (example,)
    cause = ""
    if ref.time_axis is not None:
        try:
            cause = diagnose(model, args[0], sequences[worst.sequence], ref.time_axis, gate)
        except Exception:  # the diagnosis only names a cause: without one, the generic line
            cause = ""
    if not cause and not graph.states:
        cause = (
            "the model remembers earlier steps but the captured step keeps no state (a "
            "recurrence in a Python loop over time is traced once, at one step): write it as a "
            "module that takes its state, forward(x, h) -> (y, h)"
        )
    cause = cause or (
        "an op in the model mixes time steps or keeps a state that the step does not carry"
    )
    raise ExportError(
        f"the exported step strays from the model run {ref.how} ({worst.output!r} off by "
        f"{worst.err:.2e} at step {worst.step}, gate {gate:g}): {cause}; refusing to write a "
        "wrong bundle"
    )


def first_mismatch(
    graph: Graph, sequences: list[np.ndarray], ref: Reference, gate: float
) -> Mismatch | None:
    """The first step (in sequence order) where a data output strays beyond `gate`."""
    ex = Executor(graph)
    names = [t.name for t in graph.data_outputs]
    for i, (seq, want) in enumerate(zip(sequences, ref.outputs)):
        states = [graph.constants[s.init].copy() for s in graph.states]
        for t, x in enumerate(seq):
            out = ex.run({graph.inputs[0].name: x, **dict(zip(graph.state_inputs, states))})
            states = [out[s.output] for s in graph.states]
            for name, w in zip(names, want):
                r = w[t]
                err = float(np.abs(out[name] - r).max(initial=0.0)) / max(
                    1.0, float(np.abs(r).max(initial=0.0))
                )
                if not err <= gate:  # NaN too
                    return Mismatch(name, i, t, err)
    return None


def gate_over_time(
    model: torch.nn.Module,
    example: Any,
    graph: Graph,
    golden: list[np.ndarray],
    say: Progress,
) -> list[list[np.ndarray]] | None:
    """Runs the gate on the golden sequences plus two seeded random ones of 2 * MIN_STEPS
    steps; returns the reference's data outputs on the golden sequences, for golden.npz.
    None for a torch.export program (a .pt2 MODEL): it runs only at the shapes it was traced
    at and its recurrent ops are no modules, so only its captured step can be the reference."""
    if isinstance(model, torch.fx.GraphModule):
        say("  a torch.export program runs at its traced shapes only: checked at one step")
        return None
    rng = np.random.default_rng(1)  # fixed seed: the same model gives the same verdict
    extra = [sample_input(graph, graph.inputs[0], rng, (2 * MIN_STEPS,)) for _ in range(2)]
    sequences = [*golden, *extra]
    say(f"running the model over {len(sequences)} sequences for the sequence-level gate")
    try:
        ref = reference(model, example, graph, sequences)
    except Exception as e:  # the user's forward, stepped with its own states: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ExportError(
            f"running the model step by step with its own states fed back raised "
            f"{type(e).__name__}: {first}"
        ) from e
    for spec, *outs in zip(graph.data_outputs, *ref.outputs):
        if not all(
            np.isfinite(o).all() for o in outs
        ):  # nothing can be checked against NaN: say that first
            raise ExportError(
                f"the model's output {spec.name!r} is NaN or Inf on the golden inputs: a "
                "bundle checked against it would pass anything; fix the model (or its weights)"
            )
    check_over_time(model, example, graph, sequences, ref, SEQUENCE_GATE, say)
    return ref.outputs[: len(golden)]
