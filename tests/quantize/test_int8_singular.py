"""int8 never rounds the operand of an op that is infinite at 0 (log, rsqrt, a divisor) to 0,
and a NaN or Inf in int8 never passes a budget. Found on the realistic zoo's speech_enhancer:
log(|x| + 1e-3) read an int8 tensor whose grid put 1e-3 at 0, so log gave -inf and the next
matmul NaN ("invalid value encountered in matmul"), and mixed precision then reported that
int8 on it "costs nan% of the output range"."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnnedge.export.capture.program import capture
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.fidelity import compare, float_outputs, int8_outputs
from rnnedge.quantize.int8 import plan_int8
from rnnedge.quantize.mixed import Int8Budget


class LogFront(nn.Module):
    """speech_enhancer's front: log-compressed magnitudes into an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(torch.log(x.abs() + 1e-3))[0])


def test_int8_keeps_the_input_of_log_float_and_stays_finite():
    torch.manual_seed(0)
    graph = capture(LogFront().eval(), torch.zeros(1, 1, 6)).graph
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((64, 1, 1, 6)).astype(np.float32) for _ in range(3)]
    plan = plan_int8(graph, calibrate(graph, seqs))
    (log,) = [n for n in graph.nodes if n.op == "log"]
    q = plan.activation(log.inputs[0])
    assert q.dtype == "float32" and "op 'log' reads it" in q.why, q
    with np.errstate(all="raise"):  # log(0) and inf - inf raise instead of warning
        got = int8_outputs(graph, plan, seqs)
    fid = compare("calibration", got, float_outputs(graph, seqs))
    assert all(np.isfinite(y).all() for ys in got.values() for y in ys)
    assert np.isfinite(fid.worst_pct)


def test_a_nan_in_int8_misses_every_budget():
    ref = {"y": [np.linspace(0, 1, 40, dtype=np.float32).reshape(40, 1)]}
    got = {"y": [ref["y"][0].copy()]}
    got["y"][0][17] = np.nan
    fid = compare("calibration", got, ref)
    assert fid.worst_pct == np.inf
    assert Int8Budget(max_err_pct=50.0).misses(fid) == ["'y' is NaN or Inf at some step"]
