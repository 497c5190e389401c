"""A state that starts at a stand-in for minus infinity (RWKV's running max, -1e30): the
stand-in never enters a calibration range, and int8 keeps that state float, saying why."""

from __future__ import annotations

import numpy as np
import torch

from rnnedge.export.capture.program import capture
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8


class Shifted(torch.nn.Module):
    def forward(self, x, m):  # m: the last x, or -1e30 before the first (exp(m) is then 0)
        return torch.exp(m) + x, x * 1.0


def test_the_infinity_stand_in_stays_out_of_ranges_and_int8():
    graph = capture(Shifted(), (torch.ones(1, 4), torch.full((1, 4), -1e30))).graph
    rng = np.random.default_rng(0)
    ranges = calibrate(graph, [rng.standard_normal((50, 1, 4)).astype(np.float32)])
    state = graph.states[0].input
    lo, hi = ranges.ranges[state]
    assert lo > -10 and hi < 10, (lo, hi)  # the data's range, not -1e30's
    t = plan_int8(graph, ranges).activation(state)
    assert t.dtype == "float32" and "infinity" in t.why
