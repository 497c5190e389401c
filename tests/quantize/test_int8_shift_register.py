"""Mixed precision's structural rules (quantize/mixed_rules.py) tell a shift register (a state
whose next value is a slice / concat of itself and fresh inputs: a Mamba conv state) from an
accumulator (a state carried through elementwise arithmetic): the first stays int8 in the
group of what enters it, the second is kept float. Before the rule, the Mamba conv state was
called an accumulator, and the default-budget search kept it float with in_proj."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnedge.export.capture.program import capture
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import activation_groups, plan_int8
from rnnedge.quantize.mixed_rules import shift_register, structural_floats


class ShiftConv(nn.Module):
    """A causal conv over the last K inputs kept as a state (1, C, K), one step at a time."""

    def __init__(self, c: int = 6, k: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(3, c)
        self.w = nn.Parameter(torch.randn(c, k) * 0.5)
        self.out = nn.Linear(c, 2)

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        state = torch.cat([state[..., 1:], self.inp(x)[..., None]], dim=-1)
        return self.out((state * self.w).sum(-1)), state


class Leaky(nn.Module):
    """The contrast: s' = 0.9 s + u carries the state through elementwise arithmetic."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(3, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        state = 0.9 * state + self.inp(x)
        return self.out(state), state


def _structural(model: nn.Module, example: tuple, seqs: list[np.ndarray]):
    graph = capture(model.eval(), example).graph
    ranges = calibrate(graph, seqs)
    return graph, structural_floats(graph, ranges, plan_int8(graph, ranges))


def test_a_hand_written_shift_register_is_no_accumulator():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((40, 1, 3)).astype(np.float32) for _ in range(2)]
    graph, kept = _structural(ShiftConv(), (torch.zeros(1, 3), torch.zeros(1, 6, 4)), seqs)
    (pair,) = graph.states
    assert shift_register(graph, pair.input, pair.output)
    assert kept == {}, kept  # was: the state, its slice and the concat, as an accumulator
    # the state shares one set of parameters with what enters it (the input linear's output)
    tied = activation_groups(graph)
    linear = next(n.outputs[0] for n in graph.nodes if n.op == "linear")
    assert tied[pair.input] == tied[linear]
    # and an accumulator is still one
    graph, kept = _structural(Leaky(), (torch.zeros(1, 3), torch.zeros(1, 6)), seqs)
    (pair,) = graph.states
    assert not shift_register(graph, pair.input, pair.output)
    # float in the plan itself (s' = a s + b), so the search's rules need not keep it
    why = plan_int8(graph, calibrate(graph, seqs)).activation(pair.input).why
    assert why.startswith("accumulator state"), why


def test_mamba_conv_state_is_a_shift_register_and_the_ssm_state_is_not():
    pytest.importorskip("transformers")
    from mamba_models import random_mamba

    from rnnedge.export.adapters import adapt

    step = adapt("hf-mamba", random_mamba(vocab=16, hidden=16, layers=2))
    graph = capture(step, step.example()).graph
    rng = np.random.default_rng(0)
    ranges = calibrate(graph, [rng.integers(0, 16, (30, 1, 1)) for _ in range(2)])
    plan = plan_int8(graph, ranges)
    kept = structural_floats(graph, ranges, plan)
    for s in graph.states:
        if "conv_state" in s.input:
            assert shift_register(graph, s.input, s.output), s.input
            assert s.input not in kept, kept[s.input]
            assert plan.activation(s.input).dtype == "int8"
        else:
            assert not shift_register(graph, s.input, s.output), s.input
            assert plan.activation(s.input).dtype == "float32"  # the ssm state: float
    assert not any("conv_state" in t for t in kept), kept
