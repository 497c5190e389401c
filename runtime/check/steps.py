"""How far apart two backends' int8 outputs are, in quantisation steps of each output.

The unit the int8 files are held to against the numpy integer spec (runtime/quant/int8.py):
one step is the output's int8 scale, so "2 steps" means the same integer up to 2 either way;
an int16 tensor (the LSTM cell) is counted in steps of 256 of its own, the int8 step of its
range: its updates come from int8 gates, one step of which moves it by up to 128 int16 steps. Both
sides get the same input AND the same incoming state at every step (the spec's, carried), so
this measures whether they compute the same step. Two free-running streams whose roundings
differ by one step somewhere drift apart like any two implementations of a recurrence; their
accuracy against float is measured separately (rnnedge check, tests/quantize/test_int8_export.py).
"""

from __future__ import annotations

import numpy as np

from rnnedge.runtime.backends import open_backend
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.data import golden_sequences
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.quant.int8 import Int8Executor
from rnnedge.runtime.quant.plan import read_plan


def steps_apart(
    bundle: Bundle,
    backend: str,
    reference: str = "numpy",
    sequences: list[np.ndarray] | None = None,
    rounding: str = "fp32",
) -> dict[str, float]:
    """output name -> max |backend - reference| / step over `sequences` (default: the golden
    ones), the reference's state carried and fed to both, for every output the plan stores
    as an integer (a float output has no step). The default reference is the numpy spec, in
    `rounding` (Int8Executor's: "fp32", or "tflite" for TFLite's builtin fixed point)."""
    plan = read_plan(bundle.files, str(bundle.path))
    g = bundle.graph
    step = {}
    for t in g.outputs:
        q = plan.activation(t.name)
        if q is not None and q.dtype != "float32":
            step[t.name] = q.scale[0] * (256 if q.dtype == "int16" else 1)
    ref_backend = open_backend(bundle, reference, "int8")
    if reference == "numpy" and rounding != "fp32":
        ref_backend = _Spec(bundle, plan, rounding)
    other = open_backend(bundle, backend, "int8")
    if sequences is None:
        sequences = list(golden_sequences(bundle)[0].inputs)
    stacks = _stacked_parts(bundle, plan, step)
    worst = dict.fromkeys([*step, *stacks], 0.0)
    n_data = len(g.data_outputs)
    for xs in sequences:
        state = [g.constants[s.init].copy() for s in g.states]
        for x in xs:
            feeds = [np.ascontiguousarray(x, g.inputs[0].dtype), *state]  # float32, or ids
            ref, got = ref_backend.run(feeds), other.run(feeds)
            for t, r, o in zip(g.outputs, ref, got):
                diff = np.abs(np.asarray(o, np.float64) - r)
                if t.name in step:
                    worst[t.name] = max(worst[t.name], float(diff.max(initial=0.0)) / step[t.name])
                for axis, lo, hi, unit in stacks.get(t.name, ()):
                    d = float(np.take(diff, range(lo, hi), axis=axis).max(initial=0.0)) / unit
                    worst[t.name] = max(worst[t.name], d)
            state = [np.asarray(s, np.float32) for s in ref[n_data:]]
    return {k: round(v, 3) for k, v in worst.items()}


class _Spec:
    """The numpy spec in another rounding, run as a backend session is (feeds list -> outputs
    list: data outputs, then the states)."""

    def __init__(self, bundle: Bundle, plan, rounding: str) -> None:
        g = bundle.graph
        self.ex = Int8Executor(g, plan, rounding=rounding)
        self.names = [g.inputs[0].name, *(s.input for s in g.states)]
        self.outputs = [t.name for t in g.outputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        outs = self.ex.run(dict(zip(self.names, feeds)))
        return [outs[n] for n in self.outputs]


def _stacked_parts(
    bundle: Bundle, plan, step: dict
) -> dict[str, list[tuple[int, int, int, float]]]:
    """A float state output that stacks int8 parts (quantize/stacked.py: each slice has its own
    parameters, the stack is float) -> (axis, start, end, step) of each int8 part, so a
    session drifting on h is caught there as on any int8 output."""
    g = bundle.graph
    producer = {n.outputs[0]: n for n in g.nodes}
    out: dict[str, list[tuple[int, int, int, float]]] = {}
    shapes_of: dict | None = None
    for s in g.states:
        node = producer.get(s.output)
        while node is not None and node.op == "reshape":
            node = producer.get(node.inputs[0])
        if s.output in step or node is None or node.op != "concat":
            continue
        if shapes_of is None:  # shapes only when a stack is there
            shapes_of = infer_shapes(g)
        # the stack keeps the axes up to the concat's (quantize/stacked.py), so part i is
        # the state's slice along that axis
        axis = node.attrs["axis"] % len(shapes_of[node.outputs[0]])
        start = 0
        for part in node.inputs:
            p, width = plan.activation(part), _width(shapes_of, part, axis)
            if p is not None and p.dtype == "int8" and width:
                out.setdefault(s.output, []).append((axis, start, start + width, p.scale[0]))
            start += width or 0
    return out


def _width(shapes: dict, name: str, axis: int) -> int | None:
    shape = shapes.get(name)
    return None if shape is None or len(shape) <= axis else int(shape[axis])
