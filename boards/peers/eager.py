"""Peers for `rnnedge bench --peers`: the same model stepped by PyTorch eager and by
onnxruntime on torch.onnx.export's file, state fed back step to step as in deployment.

Both need the PyTorch model (`--model`, the export CLI's MODEL spec), since a bundle holds no
torch model. The model's own forward runs unchanged at T=1: explicit states (forward(x,
*states)) are passed and taken back; the state of every nn.GRU/LSTM/RNN that forward calls
without one is fed back through forward hooks. Only if neither works does the torch peer fall
back to capture()'s torch.export reference step, labelled as such. Imports torch: never
import this module from runtime/.
"""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from rnnedge.errors import BackendError
from rnnedge.runtime.bundle import Bundle

RNN_TYPES = (nn.GRU, nn.LSTM, nn.RNN)


@dataclass(frozen=True, kw_only=True)
class PeerCall:
    call: Callable[[], object]
    label: str
    load_ms: float  # building the model (torch) or the InferenceSession (onnxruntime)
    prepare_ms: float | None = None  # torch.onnx.export, for the onnxruntime peer
    file_bytes: int | None = None


class _StateCarrier:
    """Feeds each RNN module's final state back as its initial state on the next call; the
    hooks see tensors, so torch.onnx.export's tracer turns them into graph inputs."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = [m for m in model.modules() if isinstance(m, RNN_TYPES)]
        self.state: dict[int, object] = {}
        for m in self.modules:
            m.register_forward_pre_hook(self._pre, with_kwargs=True)
            m.register_forward_hook(self._post)

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict):
        if len(args) == 1 and kwargs.get("hx") is None and id(module) in self.state:
            return (args[0], self.state[id(module)]), kwargs
        return None

    def _post(self, module: nn.Module, args: tuple, output: tuple) -> None:
        self.state[id(module)] = output[1]

    def flat(self) -> list[torch.Tensor]:
        return [t for m in self.modules for t in pytree.tree_leaves(self.state[id(m)])]

    def set_flat(self, tensors: list[torch.Tensor]) -> None:
        it = iter(tensors)
        for m in self.modules:
            self.state[id(m)] = (next(it), next(it)) if isinstance(m, nn.LSTM) else next(it)


class StepModule(nn.Module):
    """forward(x, *explicit states, *carried RNN states) -> (*outputs, *explicit, *carried)."""

    def __init__(self, model: nn.Module, n_explicit: int) -> None:
        super().__init__()
        self.model = model
        self.n_explicit = n_explicit
        self.carrier = _StateCarrier(model)

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.carrier.set_flat(list(states[self.n_explicit :]))
        out = pytree.tree_leaves(self.model(x, *states[: self.n_explicit]))
        return (*out, *self.carrier.flat())


def _explicit_states(model: nn.Module, bundle: Bundle) -> list[torch.Tensor]:
    params = list(inspect.signature(model.forward).parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise BackendError("forward takes *args; cannot tell its states apart")
    n = len([p for p in params if p.default is p.empty]) - 1
    # capture() puts explicit states first, in forward's order, then the lifted ones
    g = bundle.graph
    return [torch.from_numpy(g.constants[s.init].copy()) for s in g.states[:n]]


def step_module(model: nn.Module, bundle: Bundle, x: torch.Tensor) -> tuple[StepModule, list]:
    """The model as a one-step module with every state explicit, and its initial states.
    Raises BackendError when the model cannot be driven this way."""
    explicit = _explicit_states(model, bundle)
    step = StepModule(model.eval(), len(explicit))
    with torch.inference_mode():
        try:
            step.model(x, *explicit)  # a first call lets the hooks learn every state's shape
        except Exception as e:  # the user's model: any error means "cannot drive it"
            raise BackendError(f"calling forward(x, *states) failed: {e}") from e
    carried = [torch.zeros_like(t) for t in step.carrier.flat()]
    return step, [*explicit, *carried]


def torch_peer(make_model: Callable[[], nn.Module], bundle: Bundle, x: np.ndarray) -> PeerCall:
    """PyTorch eager, one thread. make_model builds a fresh model (each peer hooks its own)."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = make_model()
    xt = torch.from_numpy(x)
    try:
        step, init = step_module(model, bundle, xt)
    except BackendError:
        return _reference_peer(model, x, t0)
    n_states = len(init)
    states = list(init)

    def call() -> None:
        with torch.inference_mode():
            out = step(torch.from_numpy(x), *states)
        states[:] = out[len(out) - n_states :]
        [o.numpy() for o in out[: len(out) - n_states]]

    label = "PyTorch eager (model.forward at T=1, state fed back)"
    return PeerCall(call=call, label=label, load_ms=(time.perf_counter() - t0) * 1e3)


def _reference_peer(model: nn.Module, x: np.ndarray, t0: float) -> PeerCall:
    from rnnedge.export.capture.program import capture

    cap = capture(model, torch.from_numpy(x))
    states = [cap.graph.constants[s.init].copy() for s in cap.graph.states]

    def call() -> None:
        _, new = cap.torch_step([x], states)
        states[:] = new

    label = "PyTorch torch.export reference step (fallback: forward could not be stepped)"
    return PeerCall(call=call, label=label, load_ms=(time.perf_counter() - t0) * 1e3)


def onnx_peer(make_model: Callable[[], nn.Module], bundle: Bundle, x: np.ndarray) -> PeerCall:
    """onnxruntime, one thread, on torch.onnx.export(dynamo=False)'s file of one step."""
    import onnxruntime as ort

    t0 = time.perf_counter()
    model = make_model()
    step, init = step_module(model, bundle, torch.from_numpy(x))
    names = ["x", *(f"state{i}" for i in range(len(init)))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "torch_export.onnx"
        try:
            with torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(
                    step,
                    (torch.from_numpy(x), *init),
                    str(path),
                    dynamo=False,
                    input_names=names,
                    opset_version=17,
                )
        except Exception as e:  # torch.onnx raises assorted errors on models it cannot trace
            raise BackendError(f"torch.onnx.export failed: {e}") from e
        data = path.read_bytes()
    prepare = (time.perf_counter() - t0) * 1e3
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    t1 = time.perf_counter()
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    load = (time.perf_counter() - t1) * 1e3
    # the exporter drops inputs it folded away (e.g. an unused state); feed the rest
    wanted = [i.name for i in session.get_inputs()]
    states = [t.numpy().copy() for t in init]
    n_out = len(session.get_outputs())

    def call() -> None:
        feeds = dict(zip(names, [x, *states]))
        res = session.run(None, {k: feeds[k] for k in wanted})
        states[:] = res[n_out - len(states) :]

    label = "onnxruntime on torch.onnx.export's file (dynamo=False, states as inputs)"
    return PeerCall(call=call, label=label, load_ms=load, prepare_ms=prepare, file_bytes=len(data))
