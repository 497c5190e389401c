"""What an indexed write into a fresh tensor decomposes to, in core ATen.

`out = torch.zeros_like(k); out[:, t] = v` (RWKV's recurrence in transformers writes each
step's output so) functionalizes to `full_like` (the fresh tensor), `copy` (v cast to the
slot's dtype) and `where(mask, v, out)` with a mask built from constants (arange == t). At
one step the mask is constant, so the write is a choice: all true picks v, all false keeps
the fill. A mask that mixes both (a write into part of a computed tensor) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnedge.errors import UnsupportedModelError
from rnnedge.export.capture.builder import Sym
from rnnedge.export.capture.context import Ctx, sym


def _full_like(ctx: Ctx, node, x, fill_value, **_kwargs) -> torch.Tensor:
    # only x's shape matters: a constant of the node's shape (folded like any constant)
    return torch.full(ctx.out_shape, float(fill_value), dtype=torch.float32)


def _copy(ctx: Ctx, node, dst, src, non_blocking=False) -> Any:
    # copy(dst, src): src broadcast to dst's shape; dst's values are overwritten
    return _broadcast(ctx, src)


def _where(ctx: Ctx, node, cond, a, b) -> Any:
    if isinstance(cond, Sym):
        raise UnsupportedModelError(
            f"{ctx.where or 'model'}: torch.where with a condition computed from the input "
            "is not supported (only an indexed write at a fixed position)"
        )
    mask = cond.to(torch.bool)
    if bool(mask.all()):
        return _broadcast(ctx, a)
    if not bool(mask.any()):
        return _broadcast(ctx, b)
    raise UnsupportedModelError(
        f"{ctx.where or 'model'}: a write into part of a computed tensor (torch.where with a "
        "mixed constant mask) is not supported"
    )


def _broadcast(ctx: Ctx, v: Any) -> Any:
    if not isinstance(v, Sym):
        return torch.as_tensor(v, dtype=torch.float32).expand(ctx.out_shape).clone()
    if tuple(ctx.b.shape(v)) == tuple(ctx.out_shape):
        return v
    return ctx.b.op("expand", [sym(ctx, v)], shape=list(ctx.out_shape))


WRITE_ATEN: dict[str, Callable[..., Any]] = {
    "aten.full_like.default": _full_like,
    "aten.copy.default": _copy,
    "aten.where.self": _where,
}
