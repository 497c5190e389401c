"""Batching: one Graph that steps n independent streams in ONE call.

A step graph captured at batch B has the batch baked into its reshape shapes. To learn which
axis of every tensor is the batch, the model is captured a second time with the step input and
the explicit states doubled along candidate axes; the two graphs must be the same but for
sizes that double along exactly one axis per tensor. The batch entry of every reshape shape
then becomes -1 and of every expand shape 1, so the graph runs at any batch. Finally numpy
checks the claim: 3 streams stacked must give exactly what 3 separate steps give. A model
that mixes batch entries (a mean over the batch, a reshape that folds it into features) fails
one of these checks and exports unbatched: single streams work, `streams(n)` says why not.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np

from rnnedge.errors import RnnedgeError
from rnnedge.export.capture.streams_probe import NotBatchable, check_independent
from rnnedge.runtime.executor import infer_shapes
from rnnedge.runtime.graph import Graph, Node

Recapture = Callable[[tuple], Graph]  # example args -> Graph
MAX_ATTEMPTS = 8


def batch_graph(
    g1: Graph, args: tuple, recapture: Recapture, probe: tuple[np.ndarray, ...] | None = None
) -> tuple[Graph, str]:
    """(batch-polymorphic graph, "") or (g1 unchanged, the reason it cannot batch)."""
    import torch
    from torch.utils import _pytree as pytree

    leaves, spec = pytree.tree_flatten(args)
    reason = "no axis of the step input doubles cleanly"
    found = False  # a reason from a probe that captured, the most telling one
    for attempt, axes in enumerate(_candidate_axes(leaves)):
        if attempt >= MAX_ATTEMPTS:
            break
        doubled = [torch.cat([t, t], dim=a) for t, a in zip(leaves, axes)]
        try:
            g2 = recapture(pytree.tree_unflatten(doubled, spec))
        except RnnedgeError as e:  # say it was rnnedge's probe, not the user's example, and
            # never let it hide a reason found on a capture that worked (a batch-mixing op)
            if not found:
                reason = (
                    f"rnnedge looks for a batch axis by capturing the model with the example "
                    f"doubled along axis {axes[0]}, and that capture failed ({e})"
                )
            continue
        try:
            g = _polymorphic(g1, g2)
            check_independent(g, probe)
            return g, ""
        except (RnnedgeError, NotBatchable) as e:
            if not found:
                reason, found = str(e), True
    return g1, reason


def _candidate_axes(leaves: list) -> itertools.product:
    """Per leaf, the axes that could be the batch: any but the last (features), whose size
    equals the step input's batch; the step input's batch axis is tried first to last."""
    x = leaves[0]
    for ax in range(max(1, x.dim() - 1)):
        b = x.shape[ax]
        per_state = [[a for a in range(max(1, t.dim() - 1)) if t.shape[a] == b] for t in leaves[1:]]
        yield from itertools.product([ax], *per_state)


def _polymorphic(g1: Graph, g2: Graph) -> Graph:
    if [(n.op, n.inputs, n.outputs) for n in g1.nodes] != [
        (n.op, n.inputs, n.outputs) for n in g2.nodes
    ]:
        raise NotBatchable("the model's graph changes with the batch size")
    shapes = infer_shapes(g1)
    axes = _batch_axes(shapes, infer_shapes(g2))
    inits = {s.init for s in g1.states}
    for name in g1.constants:
        if name in axes and name not in inits:
            raise NotBatchable(f"constant {name!r} depends on the batch size")
    nodes = tuple(_free_batch(n1, n2, axes) for n1, n2 in zip(g1.nodes, g2.nodes))
    users: dict[str, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n)
    for n in nodes:
        _check_no_mixing(n, axes, shapes, users)
    spec = lambda t: dataclasses.replace(t, batch_axis=axes.get(t.name))  # noqa: E731
    inputs, outputs = tuple(map(spec, g1.inputs)), tuple(map(spec, g1.outputs))
    if any(t.batch_axis is None for t in (*inputs, *outputs)):
        raise NotBatchable("an input, output or state does not carry the batch")
    return Graph(
        inputs=inputs, outputs=outputs, nodes=nodes, constants=g1.constants, states=g1.states
    )


def _batch_axes(s1: dict, s2: dict) -> dict[str, int]:
    axes = {}
    for name, a in s1.items():
        b = s2[name]
        if a == b:
            continue
        diff = [i for i, (p, q) in enumerate(zip(a, b)) if p != q]
        if len(a) != len(b) or len(diff) != 1 or b[diff[0]] != 2 * a[diff[0]]:
            raise NotBatchable(f"tensor {name!r} does not scale with the batch ({a} -> {b})")
        axes[name] = diff[0]
    return axes


def _free_batch(n1: Node, n2: Node, axes: dict[str, int]) -> Node:
    attrs = dict(n1.attrs)
    for key, value in n1.attrs.items():
        if value == n2.attrs.get(key):
            continue
        out_axis = axes.get(n1.outputs[0])
        if n1.op not in ("reshape", "expand") or key != "shape" or out_axis is None:
            raise NotBatchable(f"op {n1.op!r} ({n1.outputs[0]}): {key} depends on the batch size")
        changed = [i for i, (p, q) in enumerate(zip(value, n2.attrs[key])) if p != q]
        if changed != [out_axis]:
            raise NotBatchable(f"op {n1.op!r} ({n1.outputs[0]}) reshapes the batch axis")
        free = list(value)
        free[out_axis] = -1 if n1.op == "reshape" else 1  # -1: inferred; 1: keep x's dim
        attrs[key] = free
    return dataclasses.replace(n1, attrs=attrs)


def _check_no_mixing(
    n: Node, axes: dict[str, int], shapes: dict[str, tuple[int, ...]], users: dict[str, list[Node]]
) -> None:
    """Ops whose result would mix the entries of the batch, which shapes alone do not show;
    the error names the op, where it came from and the axis."""
    ax = axes.get(n.inputs[0]) if n.inputs else None
    out = n.outputs[0]
    if n.op in ("mean", "sum") and ax in n.attrs["axes"]:
        _refuse(n, f"reduces over axis {ax}, the batch axis")
    if n.op == "slice" and axes.get(out) == n.attrs["axis"]:
        _refuse(n, f"slices axis {ax}, the batch axis")
    if (
        n.op == "concat"
        and axes.get(out) == n.attrs["axis"]
        and not _is_stack(n, axes, shapes, users)
    ):
        _refuse(n, f"joins its inputs along axis {n.attrs['axis']}, the batch axis")
    if n.op == "layer_norm" and ax is not None and ax >= len(shapes[n.inputs[0]]) - n.attrs["axes"]:
        _refuse(n, f"normalises over axis {ax}, the batch axis")
    if any(i in axes for i in n.inputs) and out not in axes:
        _refuse(n, f"drops the batch axis (axis {ax} of its input)")


def _refuse(n: Node, what: str) -> None:
    where = f" from {n.source}" if n.source else ""
    raise NotBatchable(
        f"op {n.op!r} ({n.outputs[0]}{where}) {what}, so it combines entries of the batch"
    )


def _is_stack(
    n: Node, axes: dict[str, int], shapes: dict[str, tuple[int, ...]], users: dict[str, list[Node]]
) -> bool:
    """torch.stack([h, c]) lowered as concat along the batch axis a and a reshape that splits
    axis a into (k, batch): entry b of every input stays entry b of the result's batch axis
    a + 1, so no entries mix (at any batch: the rows of input i are rows i*B..(i+1)*B-1)."""
    a, first = n.attrs["axis"], shapes[n.inputs[0]]
    if any(axes.get(i) != a or shapes[i] != first for i in n.inputs):
        return False
    want = (*first[:a], len(n.inputs), *first[a:])
    after = users.get(n.outputs[0], [])
    return bool(after) and all(
        u.op == "reshape" and shapes[u.outputs[0]] == want and axes.get(u.outputs[0]) == a + 1
        for u in after
    )
