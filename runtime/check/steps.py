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
from rnnedge.runtime.quant.plan import read_plan


def steps_apart(
    bundle: Bundle,
    backend: str,
    reference: str = "numpy",
    sequences: list[np.ndarray] | None = None,
) -> dict[str, float]:
    """output name -> max |backend - reference| / step over `sequences` (default: the golden
    ones), the reference's state carried and fed to both, for every output the plan stores
    as an integer (a float output has no step). The default reference is the numpy spec."""
    plan = read_plan(bundle.files, str(bundle.path))
    g = bundle.graph
    step = {}
    for t in g.outputs:
        q = plan.activation(t.name)
        if q is not None and q.dtype != "float32":
            step[t.name] = q.scale[0] * (256 if q.dtype == "int16" else 1)
    ref_backend = open_backend(bundle, reference, "int8")
    other = open_backend(bundle, backend, "int8")
    if sequences is None:
        sequences = list(golden_sequences(bundle)[0].inputs)
    worst = dict.fromkeys(step, 0.0)
    n_data = len(g.data_outputs)
    for xs in sequences:
        state = [g.constants[s.init].copy() for s in g.states]
        for x in xs:
            feeds = [np.ascontiguousarray(x, g.inputs[0].dtype), *state]  # float32, or ids
            ref, got = ref_backend.run(feeds), other.run(feeds)
            for t, r, o in zip(g.outputs, ref, got):
                if t.name in step:
                    d = float(np.abs(np.asarray(o, np.float64) - r).max(initial=0.0))
                    worst[t.name] = max(worst[t.name], d / step[t.name])
            state = [np.asarray(s, np.float32) for s in ref[n_data:]]
    return {k: round(v, 3) for k, v in worst.items()}
