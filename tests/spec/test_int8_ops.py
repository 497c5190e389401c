"""The int8 plan and numpy integer spec on the graphs that crashed them (issue 14): either
operand of add/sub/mul broadcasting, and a linear with a bias reading a state the planner keeps
float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnedge.export.capture.program import capture
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.quant.int8 import Int8Executor, _add_sub, _mul
from rnnedge.runtime.quant.plan import QParams

A, B = QParams("int8", 0.02, -5), QParams("int8", 0.013, 7)
KERNELS = {
    "add": (_add_sub(1), np.add),
    "sub": (_add_sub(-1), np.subtract),
    "mul": (_mul, np.multiply),
}


@pytest.mark.parametrize("out", [QParams("int8", 0.03, 2), QParams("int16", 2.0**-12, 0)])
@pytest.mark.parametrize("shapes", [((1,), (3, 4)), ((3, 1), (1, 4)), ((3, 4), ())])
@pytest.mark.parametrize("op", list(KERNELS))
def test_elementwise_kernels_broadcast_either_operand(op, shapes, out):
    # `1 - sigmoid(v)` and `param + linear(x)`: the smaller operand first
    make, ref_fn = KERNELS[op]
    kernel = make(None, [A, B], out)
    rng = np.random.default_rng(0)
    x, y = (rng.integers(-128, 128, s) for s in shapes)
    got = kernel(x, y)
    ref = ref_fn(A.scale * (x - A.zp), B.scale * (y - B.zp))
    ref_q = np.clip(np.round(ref / out.scale) + out.zp, out.lo, out.hi)
    assert got.shape == np.broadcast_shapes(*shapes)
    assert np.abs(got - ref_q).max() <= 1


class MixedState(nn.Module):
    """h' = a*h + b*tanh(Wx): the planner takes the state for an LSTM cell (an add of two
    products that read it) and keeps it float; a Linear WITH bias reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.head = nn.Linear(4, 8), nn.Linear(8, 3)
        self.a = nn.Parameter(torch.full((8,), 0.9))
        self.b = nn.Parameter(torch.full((8,), 0.5))

    def forward(self, x, h):
        h = self.a * h + self.b * torch.tanh(self.inp(x))
        return self.head(h), h


def test_linear_with_bias_reading_a_float_state_plans_and_runs():
    torch.manual_seed(0)
    g = capture(MixedState(), (torch.zeros(1, 4), torch.zeros(1, 8))).graph
    rng = np.random.default_rng(1)
    seqs = [rng.standard_normal((40, 1, 4)).astype(np.float32) for _ in range(4)]
    plan = plan_int8(g, calibrate(g, seqs))  # IndexError in _linear (x.scale[0]) before
    floats = {t.tensor: t.why for t in plan.left_float}
    head = next(n for n in g.nodes if n.op == "linear" and n.inputs[0] in floats)
    assert "'linear'" in floats[head.outputs[0]], floats  # the reason names its own op
    ex, q = Executor(g), Int8Executor(g, plan)
    h = qh = g.initial_state()[g.states[0].input]
    for x in rng.standard_normal((100, 1, 4)).astype(np.float32):
        ref = ex.run({g.inputs[0].name: x, g.states[0].input: h})
        got = q.run({g.inputs[0].name: x, g.states[0].input: qh})
        h, qh = ref[g.states[0].output], got[g.states[0].output]
        y = g.outputs[0].name
        span = float(np.abs(ref[y]).max()) + 1.0
        assert np.abs(got[y] - ref[y]).max() <= 0.05 * span
