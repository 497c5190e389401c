"""The PyTorch reference for `rnnedge check --model MODEL [--weights W]`.

The one check module that needs torch (and rnnedge.export): the CLI imports it only when
--model is given, so check runs on a board without either. The user's model is captured at
one step exactly as export does, and its PyTorch step (Captured.torch_step, which runs the
exported ATen program with torch's own kernels) becomes the reference.
"""

from __future__ import annotations

from rnnedge.errors import ExportError, UnsupportedModelError
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.run import StepFn


def torch_reference(bundle: Bundle, spec: str, weights: str | None = None) -> StepFn:
    import torch

    from rnnedge.export.capture.program import capture
    from rnnedge.export.model_spec import load_model

    model = load_model(spec, weights)
    g = bundle.graph
    x = torch.zeros(g.inputs[0].shape)
    init = [torch.from_numpy(g.constants[s.init].copy()) for s in g.states]
    # the bundle does not record how the model takes its states: try no state arguments
    # (streamified), then the first k states as arguments, then all of them as one tuple
    candidates = [x, *((x, *init[:k]) for k in range(len(init), 0, -1))]
    if len(init) > 1:
        candidates.append((x, tuple(init)))
    want = _io(g)
    tried = []
    for example in candidates:
        try:
            cap = capture(model, example)
        except (ExportError, UnsupportedModelError) as e:
            tried.append(str(e))
            continue
        if _io(cap.graph) == want:
            return _adapt(cap.torch_step)
        tried.append(f"captured {_io(cap.graph)}")
    raise ExportError(
        f"--model {spec}: its step does not match the bundle's ({want}); tried "
        f"{len(candidates)} ways to pass the state, the last gave: {tried[-1]}"
    )


def _io(graph) -> str:
    """Inputs and outputs with shapes, e.g. "x[1, 1, 8], rnn.h[1, 1, 16] -> y[1, 1, 4], ..."."""
    ins = ", ".join(f"{t.name}{list(t.shape)}" for t in graph.inputs)
    return ins + " -> " + ", ".join(f"{t.name}{list(t.shape)}" for t in graph.outputs)


def _adapt(torch_step) -> StepFn:
    def step(x, states):
        return torch_step([x], states)

    return step
