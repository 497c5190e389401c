"""The sequence-level gate, aliased examples and the streams(n) probe (export side).
The realistic zoo (tests/e2e/test_realistic_zoo.py) runs whole models through them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import build
from realistic_models import PositiveNormaliser, StackedStateLSTMCell
from realistic_refused import LSTMCellModel

from rnnedge.errors import ExportError
from rnnedge.export import sequence_gate
from rnnedge.export.aliasing import check_distinct
from rnnedge.export.capture.program import capture
from rnnedge.export.pipeline import export_bundle
from rnnedge.runtime.bundle import read_bundle
from rnnedge.runtime.npzio import read_npz


def test_golden_outputs_are_the_model_run_over_the_whole_sequence(tmp_path) -> None:
    model, example = build("gru")
    path = export_bundle(model, example, tmp_path / "g.rnnedge")
    golden = read_npz((path / "golden.npz").read_bytes(), what="golden.npz")
    xs = golden["seq0.x"]  # (T, 1, 1, F): joined along the time axis (batch_first: 1)
    with torch.no_grad():
        want = model(torch.from_numpy(np.concatenate(list(xs), axis=1)))
    # the same run, bit for bit: not the one-step program stepped (1e-7 away)
    np.testing.assert_array_equal(golden["seq0.y"][:, 0, 0], want[0].numpy())


def test_the_sequence_gate_can_trip_and_then_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sequence_gate, "SEQUENCE_GATE", -1.0)
    model, example = build("gru")
    with pytest.raises(ExportError, match=r"strays from the model run over the whole sequence"):
        export_bundle(model, example, tmp_path / "g.rnnedge")
    assert not (tmp_path / "g.rnnedge").exists()


def test_a_model_that_cannot_run_over_a_sequence_is_checked_stepped(tmp_path) -> None:
    model, example = build("front_end")  # its forward reshapes x to one step's size
    said: list[str] = []
    export_bundle(model, example, tmp_path / "f.rnnedge", progress=said.append)
    assert any("checked stepped instead" in s for s in said), said
    assert any("stepped, its recurrent states carried: matches" in s for s in said), said


def test_aliased_examples_are_refused_and_distinct_views_accepted() -> None:
    x, h0 = torch.zeros(1, 8), torch.zeros(1, 16)
    with pytest.raises(ExportError, match=r"example inputs 1 and 2 are the same tensor"):
        check_distinct((x, h0, h0))
    hc = torch.zeros(3, 16)
    with pytest.raises(ExportError, match=r"example inputs 1 and 2 .*share memory"):
        check_distinct((x, hc[0:2], hc[1:3]))  # overlapping views
    with pytest.raises(ExportError, match=r"pass distinct tensors"):
        check_distinct((x, (h0, (x,))))
    check_distinct((x, hc[0:1], hc[1:2]))  # one buffer, disjoint halves: fine
    check_distinct((x, h0, h0.clone()))


def test_distinct_views_of_one_buffer_export_the_model(tmp_path) -> None:
    torch.manual_seed(0)
    model, hc = LSTMCellModel().eval(), torch.zeros(2, 1, 16)
    path = export_bundle(model, (torch.zeros(1, 8), hc[0], hc[1]), tmp_path / "v.rnnedge")
    assert [s.input for s in read_bundle(path).manifest.states] == ["h", "c"]


@pytest.mark.parametrize(
    ("factory", "example"),
    [
        (PositiveNormaliser, lambda: (torch.zeros(1, 8), torch.ones(1, 8), torch.zeros(1, 16))),
        (StackedStateLSTMCell, lambda: (torch.zeros(1, 8), torch.zeros(2, 1, 16))),
    ],
)
def test_streams_probe_accepts_real_domain_states_and_stacked_states(factory, example) -> None:
    torch.manual_seed(0)
    cap = capture(factory().eval(), example())
    assert cap.unbatched_why == ""
    assert all(t.batch_axis is not None for t in cap.graph.inputs)


class MixesBatch(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = torch.nn.GRUCell(4, 8)

    def forward(self, x, h):
        h = self.cell(x, h)
        return h - h.mean(dim=0, keepdim=True), h


def test_streams_probe_names_the_op_and_the_axis_when_it_refuses() -> None:
    cap = capture(MixesBatch().eval(), (torch.zeros(1, 4), torch.zeros(1, 8)))
    assert "'mean'" in cap.unbatched_why and "axis 0, the batch axis" in cap.unbatched_why


def test_a_last_step_output_over_a_long_sequence_is_checked_stepped(tmp_path) -> None:
    from realistic_models import KeywordSpotter

    torch.manual_seed(0)
    model = KeywordSpotter(last_only=True).eval()
    golden = [np.random.default_rng(0).standard_normal((300, 1, 1, 40)).astype(np.float32)]
    said: list[str] = []
    export_bundle(
        model, torch.zeros(1, 1, 40), tmp_path / "k.rnnedge", golden=golden, progress=said.append
    )
    assert any("holds the last step only and the sequence has 300 steps" in s for s in said), said


class FailsOnItsOwnState(torch.nn.Module):
    """Traces fine, then raises when run eagerly."""

    def forward(self, x, h):
        if not torch.compiler.is_exporting():
            raise ValueError("state out of range")
        return x, h + 1.0


def test_a_model_that_raises_when_stepped_is_one_line(tmp_path) -> None:
    with pytest.raises(ExportError) as info:
        export_bundle(FailsOnItsOwnState(), (torch.zeros(1, 2), torch.zeros(1, 2)), tmp_path / "m")
    assert str(info.value) == (
        "running the model step by step with its own states fed back raised ValueError: "
        "state out of range"
    )
    assert not (tmp_path / "m").exists()
