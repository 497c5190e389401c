"""Input checks shared by Stream and Streams.

Policy: exactly the expected shape; float32, or float16/float64 converted to float32 (any
other dtype refused); no NaN or Inf, refused because one NaN would poison the state for the
rest of the stream. Non-contiguous and read-only arrays are accepted (copied when needed).
A step input of token ids (int32/int64 in the manifest, read by an embedding's gather) takes
any integer array whose ids index the table, converted to the manifest's dtype; floats are
refused (a float id is a bug upstream, never rounded silently).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnedge.errors import InputError
from rnnedge.runtime.graph import INDEX_DTYPES, Graph, TensorSpec

_FLOATS = (np.float16, np.float32, np.float64)
F32 = np.dtype(np.float32)


def check_array(x: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    """x as a C-contiguous float32 array of `shape`, or an InputError saying what is wrong."""
    arr = np.asarray(x)
    if arr.dtype not in _FLOATS:
        raise InputError(f"{what}: dtype {arr.dtype} is not a float type (expected float32)")
    if arr.shape != shape:
        raise InputError(
            f"{what}: shape {list(arr.shape)} does not match the expected {list(shape)}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InputError(f"{what}: contains NaN or Inf (refused: it would poison the state)")
    return arr


def fast_check(shape: tuple[int, ...], what: str) -> Callable[[object], np.ndarray]:
    """check_array for one expected shape, with the common case (a C-contiguous float32 array
    of that shape) checked in under 1 us: x . 0 is 0 for finite x and NaN once any element is
    NaN or Inf, and a dot product is the cheapest numpy call that reads every element. A
    closure, not a class: the step path pays for every attribute lookup."""
    zeros, vdot = np.zeros(shape, np.float32), np.vdot

    def check(x: object) -> np.ndarray:
        if (
            type(x) is np.ndarray
            and x.dtype is F32
            and x.shape == shape
            and x.flags.c_contiguous
            and vdot(x, zeros) == 0
        ):
            return x
        return check_array(x, shape, what)

    return check


def step_check(
    graph: Graph, spec: TensorSpec, shape: tuple[int, ...], what: str
) -> Callable[[object], np.ndarray]:
    """The check of graph input `spec` at `shape` (batched or with a time axis)."""
    if spec.dtype not in INDEX_DTYPES:
        return fast_check(shape, what)
    limit = id_limit(graph, spec.name)
    return lambda x: check_ids(x, shape, what, spec.dtype, limit)


def check_ids(x: object, shape: tuple[int, ...], what: str, dtype: str, limit: int) -> np.ndarray:
    """x as a C-contiguous `dtype` array of ids in [0, limit), or an InputError."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise InputError(
            f"{what}: dtype {arr.dtype} is not an integer type (expected {dtype} token ids)"
        )
    if arr.shape != shape:
        raise InputError(
            f"{what}: shape {list(arr.shape)} does not match the expected {list(shape)}"
        )
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= limit):
        bad = int(arr.min()) if int(arr.min()) < 0 else int(arr.max())
        raise InputError(f"{what}: id {bad} is outside the table's rows [0, {limit})")
    return np.ascontiguousarray(arr, dtype=dtype)


def id_limit(graph: Graph, name: str) -> int:
    """Integer input `name` holds ids: the rows of the smallest table a gather reads with it."""
    tables = [n.inputs[0] for n in graph.nodes if n.op == "gather" and n.inputs[1] == name]
    rows = [graph.constants[t].shape[0] for t in tables if t in graph.constants]
    return min(rows, default=1)


def sample_input(
    graph: Graph, spec: TensorSpec, rng: np.random.Generator, lead: tuple[int, ...] = ()
) -> np.ndarray:
    """Seeded data for input `spec` with leading dims `lead` (e.g. time): N(0, 1) float32, or
    for an integer input uniform ids in [0, id_limit) of its dtype."""
    shape = (*lead, *spec.shape)
    if spec.dtype in INDEX_DTYPES:
        return rng.integers(0, id_limit(graph, spec.name), shape).astype(spec.dtype)
    return rng.standard_normal(shape).astype(np.float32)


def split_sequences(
    arr: np.ndarray, step_shape: tuple[int, ...], what: str, dtype: str = "float32"
) -> list[np.ndarray]:
    """THE shape rule for arrays of sequences, read the same way by `run --input`, `check
    --data` and `--calibration` (docs/shapes in README "Command line"): an array whose rows
    each hold one step's values is ONE sequence of len(arr) steps, e.g. (T, 1, 1, 40) or
    (T, 40) for a (1, 1, 40) step; an array whose rows each hold a sequence of such rows is
    len(arr) sequences, e.g. (N, T, 40). Each comes back float32 (T, *step shape), or in
    `dtype` (token ids: int32/int64, which a float32 would round past 2^24)."""
    arr = np.asarray(arr)
    size = int(np.prod(step_shape))
    if arr.dtype.kind not in "fiu":
        raise InputError(f"{what}: dtype {arr.dtype} is not a number type")
    if arr.ndim >= 1 and len(arr) and arr[0].size == size:
        seqs = [arr.reshape(len(arr), *step_shape)]
    elif arr.ndim >= 2 and arr.shape[1] and arr[0, 0].size == size:
        seqs = [a.reshape(len(a), *step_shape) for a in arr]
    else:
        dims = ", ".join(map(str, step_shape))
        raise InputError(
            f"{what}: shape {list(arr.shape)} is neither (T, {dims}) nor (N, T, {dims}) "
            f"(rows of {size} values are also accepted as steps)"
        )
    out = [np.ascontiguousarray(s, dtype=dtype) for s in seqs]
    if not all(np.isfinite(s).all() for s in out if s.dtype.kind == "f"):
        raise InputError(f"{what}: contains NaN or Inf")
    return out
