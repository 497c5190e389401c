"""What capture refuses, and that the refusal names the op or layer at fault."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnedge.errors import ExportError, UnsupportedModelError
from rnnedge.export.capture.program import capture


class BiGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.GRU(4, 8, bidirectional=True, batch_first=True)

    def forward(self, x):
        return self.encoder(x)[0]


class Cumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 8, batch_first=True)
        self.post = nn.Identity()

    def forward(self, x):
        return torch.cumsum(self.gru(x)[0], dim=-1)


class StateFromInput(nn.Module):
    """h0 computed from x: cannot stream (it would restart the state every step)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 4, batch_first=True)

    def forward(self, x):
        return self.gru(x, torch.tanh(x).transpose(0, 1))[0]


class BadStatePair(nn.Module):
    def forward(self, x, h):
        return x * 2, h.sum(-1)


def test_bidirectional_gets_a_state_per_direction_for_an_offline_program() -> None:
    # it cannot stream (tests/e2e/test_offline.py); each direction is a cell of its own
    graph = capture(BiGRU(), torch.zeros(1, 1, 4)).graph
    assert [s.input for s in graph.states] == ["encoder.l0.h", "encoder.l0.reverse.h"]


def test_unsupported_op_names_op_and_module() -> None:
    with pytest.raises(UnsupportedModelError, match=r"unsupported op aten\.cumsum"):
        capture(Cumsum(), torch.zeros(1, 1, 4))


def test_more_than_one_time_step_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match=r"ONE time step.*\[1, 1, 4\]"):
        capture(BiGRU().encoder.__class__(4, 8, batch_first=True), torch.zeros(1, 5, 4))


def test_state_computed_from_input_is_refused() -> None:
    with pytest.raises(UnsupportedModelError, match=r"gru.*computed from the step input"):
        capture(StateFromInput(), torch.zeros(1, 1, 4))


def test_state_output_of_another_shape_is_refused() -> None:
    with pytest.raises(ExportError, match=r"state 'h'.*shape"):
        capture(BadStatePair(), (torch.zeros(1, 4), torch.zeros(1, 4)))


def test_non_float_example_is_refused() -> None:
    with pytest.raises(ExportError, match="float32"):
        capture(nn.GRU(4, 4), torch.zeros(1, 1, 4, dtype=torch.int64))


def test_capture_leaves_the_model_in_training_mode_if_it_was() -> None:
    model = nn.GRU(4, 4).train()
    capture(model, torch.zeros(1, 1, 4))
    assert model.training
