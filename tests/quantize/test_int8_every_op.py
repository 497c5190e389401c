"""Full int8 on every op of the Graph (issue 14): each one-node case of tests/op_cases.py with
one graph input is calibrated, planned, run by the numpy integer spec and emitted and run as
int8 ONNX and TFLite. No crash; every tensor left float says why, naming its own op; the spec
follows float within the quantisation of its input and output; the files follow the spec."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter
from op_cases import CASES, graph_of, ids

from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.quantize.calibrate import calibrate
from rnnedge.quantize.int8 import plan_int8
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.inputs import sample_input
from rnnedge.runtime.quant.int8 import Int8Executor, dequantize, quantize

ONE_INPUT = [c for c in ids("torch") if len(graph_of(c).inputs) == 1]


def _data(case: str, seed: int, steps: int) -> np.ndarray:
    c, g = CASES[case], graph_of(case)
    x, rng = g.inputs[0], np.random.default_rng(seed)
    if x.dtype != "float32":
        return sample_input(g, x, rng, (steps,))
    return rng.uniform(c.low, c.high, (steps, *x.shape)).astype(np.float32)


def _litert(model: bytes):
    lite = Interpreter(model_content=model)
    lite.allocate_tensors()
    i_in, i_out = lite.get_input_details()[0]["index"], lite.get_output_details()[0]["index"]

    def run(v: np.ndarray) -> np.ndarray:
        lite.set_tensor(i_in, v)
        lite.invoke()
        return lite.get_tensor(i_out)

    return run


@pytest.mark.parametrize("case", ONE_INPUT)
def test_int8_plans_runs_and_emits_every_op(case):
    g = graph_of(case)
    x, y = g.inputs[0].name, g.outputs[0].name
    held_out = _data(case, 9, 10)  # calibrated on too: clipping is not what this test is about
    plan = plan_int8(g, calibrate(g, [*(_data(case, s, 20) for s in range(4)), held_out]))
    producer = {n.outputs[0]: n.op for n in g.nodes}
    for t in plan.left_float:
        if t.tensor in producer:
            assert f"op {producer[t.tensor]!r}" in t.why, (t.tensor, t.why)
    spec, ref = Int8Executor(g, plan), Executor(g)
    out, x_p = plan.params(y), plan.params(x)
    step = 0.0 if out is None else out.scale
    sess = ort.InferenceSession(emit_onnx(g, plan), providers=["CPUExecutionProvider"])
    files = {"onnx": lambda v: sess.run(None, {x: v})[0]}
    if "tflite" in CASES[case].layers:  # else TFLite refuses the float op itself
        files["tflite"] = _litert(emit_tflite(g, plan))
    for xv in map(np.asarray, held_out):  # 0-d arrays, not numpy scalars, for a scalar input
        # float on the input's int8 grid: what the integer op approximates (a softmax of
        # logits in [-300, 300] rounded to 2.4 is far from the softmax of the logits)
        grid = xv if x_p is None else dequantize(quantize(xv, x_p), x_p)
        want, got = ref.run({x: grid})[y], spec.run({x: xv})[y]
        assert np.isfinite(got).all()
        span = float(np.ptp(want)) if want.size else 0.0
        # the output's rounding, and the weights' of a linear
        assert np.abs(got - want).max(initial=0) <= 0.02 * max(span, 1.0) + 2 * step, case
        for label, run in files.items():
            tol = 2 * step if step else 1e-5 * max(1.0, float(np.abs(got).max(initial=0)))
            assert np.abs(run(xv) - got).max(initial=0) <= tol + 1e-7, (case, label)
