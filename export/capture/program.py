"""capture(model, example) -> Captured: the float Graph of ONE time step, states explicit.

torch.export traces the model at one step; the core-ATen decomposition (minus the ops we lower
more directly, see PRESERVED) reduces it to a small op set; ATEN_TO_GRAPH maps each op. Any
value that depends on no model input is folded to a constant with torch itself, so weight
transposes, `torch.zeros(...)` initial states and the like never reach the Graph. A recurrent
op whose initial state folds to a constant is "streamified": that state becomes a graph input
and its final value a graph output. The user's modules are never patched.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx
from torch.utils import _pytree as pytree

from rnnedge.errors import ExportError, UnsupportedModelError
from rnnedge.export.capture import conv_time
from rnnedge.export.capture.aten import ATEN_TO_GRAPH
from rnnedge.export.capture.batching import batch_graph
from rnnedge.export.capture.builder import GraphBuilder, Sym
from rnnedge.export.capture.context import Ctx, innermost_module
from rnnedge.export.capture.rnn import RNN_CELL_OPS, RNN_SEQUENCE_OPS
from rnnedge.runtime.graph import Graph

A = torch.ops.aten
PRESERVED = [
    A.linear.default,  # maps straight to our `linear`; decomposed it is permute + addmm
    A.softplus.default,  # one stable `softplus`; decomposed it is exp/log1p/where
    A.reflection_pad1d.default,  # decomposed it becomes an index gather with arange
    A.reflection_pad2d.default,
    *(getattr(A, n.split(".")[1]).input for n in RNN_SEQUENCE_OPS),
    *(getattr(A, n.split(".")[1]).default for n in RNN_CELL_OPS),
]

StepFn = Callable[[list[np.ndarray], list[np.ndarray]], tuple[list[np.ndarray], list[np.ndarray]]]


@dataclass(frozen=True)
class Captured:
    graph: Graph
    # PyTorch's own step with the same state contract as the graph: (data inputs, states in
    # graph.states order) -> (data outputs, next states). The parity reference.
    torch_step: StepFn
    unbatched_why: str = ""  # why streams cannot be batched into one call ("" when they can)


def capture(
    model: torch.nn.Module, example: Any, probe: tuple[np.ndarray, ...] | None = None
) -> Captured:
    """`example` is one step of input: a tensor, or a tuple (x, *states) for a model whose
    forward already takes and returns its states; the i-th state input pairs with the i-th of
    the last len(states) outputs. `probe`: input sequences (the calibration data) that the
    streams(n) check steps the model through, besides seeded random ones."""
    if not isinstance(model, torch.nn.Module):  # e.g. the class KWS instead of KWS()
        what = f"the class {model.__name__}" if isinstance(model, type) else type(model).__name__
        raise ExportError(f"model must be an nn.Module instance, got {what} (call it: KWS())")
    args = example if isinstance(example, tuple) else (example,)
    _check_example(args)
    was_training = _enter_eval(model)
    try:
        ep = _export(model, args)
        graph, lifted = _to_graph(ep, args)
        graph, why = batch_graph(graph, args, lambda a: _to_graph(_export(model, a), a)[0], probe)
    finally:
        if was_training is not None:
            model.train(was_training)
    n_explicit = len(pytree.tree_leaves(args[1:]))
    return Captured(graph=graph, torch_step=_torch_step(ep, n_explicit, lifted), unbatched_why=why)


def _enter_eval(model: torch.nn.Module) -> bool | None:
    """Eval mode (dropout off, as at inference); returns the mode to restore afterwards so the
    caller sees no change, or None for a torch.export module (a .pt2 MODEL), which keeps the
    mode it was exported in and refuses eval()."""
    try:
        was_training = model.training
        model.eval()
        return was_training
    except NotImplementedError:
        return None


STEP_DTYPES = {torch.float32: "float32", torch.int32: "int32", torch.int64: "int64"}


def _check_example(args: tuple) -> None:
    for i, leaf in enumerate(pytree.tree_leaves(args)):
        # the step input may hold token ids (an Embedding's int32/int64); states are float32
        ok = (torch.float32, torch.int32, torch.int64) if i == 0 else (torch.float32,)
        if not isinstance(leaf, torch.Tensor) or leaf.dtype not in ok:
            what = type(leaf).__name__ if not isinstance(leaf, torch.Tensor) else leaf.dtype
            want = "a float32, int32 or int64" if i == 0 else "a float32"
            raise ExportError(f"example input {i} must be {want} tensor, got {what}")
    if not isinstance(args[0], torch.Tensor):
        raise ExportError("the first example input (the step input x) must be one tensor")


def _export(model: torch.nn.Module, args: tuple) -> torch.export.ExportedProgram:
    table = torch._decomp.core_aten_decompositions()
    for op in PRESERVED:
        table.pop(op, None)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch warns about nn.RNN's internal _flat_weights and its own pytree deprecations
            # on every export; they are not the user's concern
            warnings.filterwarnings("ignore", message=".*_flat_weights.*")
            warnings.filterwarnings("ignore", category=FutureWarning)
            ep = torch.export.export(model, args, strict=False)
            return ep.run_decompositions(table)
    except Exception as e:  # torch raises many types; the user needs the first line of it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = _raising_module(model, args)
        if where:
            first += f" (raised in {where})"
        if any(k in where for k in ("Pool", "Conv")):
            first += (
                "; a pool or a strided conv over time cannot run on one frame: a stream gives "
                "one output per input frame, so pooling and striding over time are not supported"
            )
        raise ExportError(f"torch.export could not trace the model at one step: {first}") from e


def _raising_module(model: torch.nn.Module, args: tuple) -> str:
    """The innermost module whose forward raises when the model runs eagerly at one step,
    as `MaxPool2d 'pool'`; "" when none does (torch.export failed for its own reasons)."""
    stack: list[str] = []
    handles = []
    for path, mod in model.named_modules():
        if path:
            name = f"{type(mod).__name__} '{path}'"
            handles.append(mod.register_forward_pre_hook(lambda m, a, n=name: stack.append(n)))
            handles.append(mod.register_forward_hook(lambda m, a, o: stack.pop()))
    try:
        with torch.no_grad():
            model(*args)
    except Exception:  # the failure being explained
        return stack[-1] if stack else ""
    finally:
        for h in handles:
            h.remove()
    return ""


def target_name(node: fx.Node) -> str:
    t = node.target
    return "getitem" if getattr(t, "__name__", "") == "getitem" else str(t)


def module_path(node: fx.Node) -> str:
    module = innermost_module(node)
    if module is None or not module[0]:
        return ""
    path, cls_name = module
    return f"{path} ({cls_name})"


def _to_graph(ep: torch.export.ExportedProgram, args: tuple) -> tuple[Graph, list[str]]:
    b = GraphBuilder()
    sig = ep.graph_signature
    consts = {
        **{k: ep.state_dict[v] for k, v in sig.inputs_to_parameters.items()},
        **{k: ep.state_dict[v] for k, v in sig.inputs_to_buffers.items()},
        **{k: ep.constants[v] for k, v in sig.inputs_to_lifted_tensor_constants.items()},
    }
    user = list(sig.user_inputs)
    state_examples = [t for a in args[1:] for t in pytree.tree_leaves(a)]
    env: dict[fx.Node, Any] = {}
    lifted: list[str] = []
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            env[node] = _placeholder(b, node, consts, user, args[0], state_examples)
        elif node.op == "call_function":
            env[node] = _lower(b, node, env, lifted)
        elif node.op == "output":
            outs = list(node.args[0])
    values = [env[o] if isinstance(o, fx.Node) else o for o in outs]
    n_states = len(state_examples)
    data, explicit = values[: len(values) - n_states], values[len(values) - n_states :]
    for name, out in zip(user[1:], explicit):
        b.state_outputs[name] = _as_output(b, out, f"state output for {name!r}")
        if b.shape(b.state_outputs[name]) != b.shape(Sym(name)):
            raise ExportError(
                f"state {name!r}: the model takes shape {list(b.shape(Sym(name)))} but returns "
                f"{list(b.shape(b.state_outputs[name]))}; the i-th state input pairs with the i-th "
                "of the last outputs"
            )
    names = ["y"] if len(data) == 1 else [f"y{i}" for i in range(len(data))]
    return b.build([(n, _as_output(b, v, n)) for n, v in zip(names, data)]), lifted


def _placeholder(b: GraphBuilder, node: fx.Node, consts: dict, user: list[str], x, states) -> Any:
    if node.name in consts:
        return consts[node.name].detach()
    if node.name not in user:
        raise ExportError(f"unexpected graph input {node.name!r} in the exported program")
    i = user.index(node.name)
    if i == 0:
        return b.input(node.name, tuple(x.shape), STEP_DTYPES[x.dtype])
    s = b.input(node.name, tuple(states[i - 1].shape))
    b.mark_state(s, states[i - 1].detach().numpy())
    return s


def _lower(b: GraphBuilder, node: fx.Node, env: dict, lifted: list[str]) -> Any:
    args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: env[n])
    if not any(isinstance(v, Sym) for v in pytree.tree_leaves((args, kwargs))):
        return _fold(node, args, kwargs)
    name = target_name(node)
    where = module_path(node)
    handler = ATEN_TO_GRAPH.get(name)
    if handler is None:
        raise UnsupportedModelError(
            f"unsupported op {name}"
            + (f" in module {where}" if where else "")
            + "; see docs/ops.md for the supported list"
        )
    val = node.meta.get("val")
    first = val[0] if isinstance(val, (tuple, list)) else val
    b.source = where

    def lift(hint: str, init: torch.Tensor) -> Sym:
        if node.name not in lifted:
            lifted.append(node.name)
        return b.add_state(hint, init.detach().to(torch.float32).numpy())

    def emit_state(state: Sym, nxt: Sym) -> None:
        b.state_outputs[state.name] = nxt

    shape = tuple(first.shape) if isinstance(first, torch.Tensor) else ()
    ctx = Ctx(b=b, where=where.split(" (")[0], out_shape=shape, lift=lift, emit_state=emit_state)
    return handler(ctx, node, *args, **kwargs)


def _fold(node: fx.Node, args: tuple, kwargs: dict) -> Any:
    try:
        with torch.no_grad():
            return node.target(*args, **kwargs)
    except Exception as e:
        raise ExportError(f"could not fold constant op {target_name(node)}: {e}") from e


def _as_output(b: GraphBuilder, v: Any, what: str) -> Sym:
    if isinstance(v, Sym):
        return v
    if isinstance(v, torch.Tensor):
        return b.const(v.detach().to(torch.float32).numpy(), what)
    raise ExportError(f"{what} is a {type(v).__name__}, not a tensor")


def _torch_step(ep: torch.export.ExportedProgram, n_explicit: int, lifted: list[str]) -> StepFn:
    """PyTorch's step, running the exported ATen program with torch kernels (including
    aten.gru/lstm themselves), the lifted initial states replaced by the given ones."""
    gm = ep.module()
    conv = torch.ops.aten.convolution.default
    plans = {n.name: conv_time.plan(n) for n in ep.graph.nodes if n.target == conv}
    convs = {k: v for k, v in plans.items() if k in lifted and v is not None}

    class Step(fx.Interpreter):
        def __init__(self, states: list[torch.Tensor]) -> None:
            super().__init__(gm)
            self.states, self.next_states = states, []

        def run_node(self, n: fx.Node) -> Any:
            if n.name not in lifted:
                return super().run_node(n)
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if n.name in convs:  # a conv over time: its buffer is the next state
                buf, self.states = self.states[0], self.states[1:]
                out, nxt = conv_time.torch_conv_step(convs[n.name], args[0], buf, args[1:])
                self.next_states.append(nxt)
                return out
            k = 2 if target_name(n) in ("aten.lstm.input", "aten.lstm_cell.default") else 1
            given, self.states = self.states[:k], self.states[k:]
            args = (args[0], given if k == 2 else given[0], *args[2:])
            out = n.target(*args, **kwargs)
            seq = target_name(n) in RNN_SEQUENCE_OPS
            self.next_states += list(out[1:]) if seq else ([out] if k == 1 else list(out))
            return out

    def step(inputs: list[np.ndarray], states: list[np.ndarray]) -> tuple[list, list]:
        # the step input keeps an integer dtype (token ids); everything else is float32
        ts = [torch.from_numpy(np.array(a, np.float32)) for a in (*inputs, *states)]
        if inputs and np.asarray(inputs[0]).dtype.kind in "iu":
            ts[0] = torch.from_numpy(np.array(inputs[0]))
        explicit, implicit = ts[1 : 1 + n_explicit], ts[1 + n_explicit :]
        interp = Step(implicit)
        with torch.no_grad():
            outs = list(pytree.tree_leaves(interp.run(ts[0], *explicit)))
        n_data = len(outs) - n_explicit
        new_states = [*outs[n_data:], *interp.next_states]
        return [o.numpy() for o in outs[:n_data]], [s.numpy() for s in new_states]

    return step
