"""What an ATen lowering sees: the graph being built, where in the user's model it is, and
how tensor-like arguments become graph tensors or constants. Shared by aten.py and rnn.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnnedge.errors import UnsupportedModelError
from rnnedge.export.capture.builder import GraphBuilder, Sym


@dataclass
class Ctx:
    b: GraphBuilder
    where: str  # module path of the node being lowered ("" at top level)
    out_shape: tuple[int, ...]  # shape of the node's (first) result, from torch's tracing
    lift: Callable[[str, torch.Tensor], Sym]  # lift a constant initial state into a state input
    emit_state: Callable[[Sym, Sym], None]  # record a lifted state's next value


def sym(ctx: Ctx, v: Any) -> Sym:
    """Any tensor-like argument as a graph tensor (constants become float32 constants)."""
    if isinstance(v, Sym):
        return v
    if isinstance(v, torch.Tensor):
        return ctx.b.const(v.detach().to(torch.float32).numpy(), "const")
    if isinstance(v, (int, float, bool)):
        return ctx.b.const(np.float32(v), "scalar")
    raise UnsupportedModelError(
        f"{ctx.where or 'model'}: cannot use {type(v).__name__} as a tensor"
    )


def const(ctx: Ctx, v: Any, what: str) -> np.ndarray:
    if isinstance(v, Sym):
        raise UnsupportedModelError(
            f"{ctx.where or 'model'}: {what} must be a constant (a parameter), "
            "not computed from the input"
        )
    return v.detach().to(torch.float32).numpy() if isinstance(v, torch.Tensor) else np.float32(v)


def innermost_module(node: torch.fx.Node) -> tuple[str, str] | None:
    """(module path, class name) of the innermost user module that ran `node`; None at the
    top level."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    cls_name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
    return path, cls_name.rsplit(".", 1)[-1]
