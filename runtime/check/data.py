"""The input sequences `rnnedge check` drives: the bundle's golden ones, the user's
(--data seqs.npz), or either looped into one long stream (--steps N)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from rnnedge.errors import InputError
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import INDEX_DTYPES
from rnnedge.runtime.inputs import check_ids, split_sequences

LABEL_SUFFIX = "_labels"
Step = tuple[tuple[int, ...], str, int]  # the step input's shape, dtype and id limit


@dataclass(frozen=True)
class Sequences:
    inputs: tuple[np.ndarray, ...]  # each (T, *step shape), float32 (or ids), one stream each
    labels: tuple[np.ndarray | None, ...]  # per sequence: () one label, (T,) one per step
    path: str | None = None  # the --data file, if any

    @property
    def steps(self) -> int:
        return sum(len(x) for x in self.inputs)


def golden_sequences(bundle: Bundle) -> tuple[Sequences, dict[str, list[np.ndarray]]]:
    """golden.npz's inputs, and PyTorch's recorded outputs and states: name -> per sequence."""
    g, gold = bundle.graph, bundle.golden()
    x_name = g.inputs[0].name
    inputs, refs = [], {t.name: [] for t in g.outputs}
    i = 0
    while f"seq{i}.{x_name}" in gold:
        inputs.append(gold[f"seq{i}.{x_name}"])
        for t in g.outputs:
            refs[t.name].append(gold[f"seq{i}.{t.name}"])
        i += 1
    if not inputs:
        raise InputError(f"{bundle.path}/golden.npz: holds no sequences")
    return Sequences(tuple(inputs), (None,) * len(inputs)), refs


def loop(seqs: Sequences, steps: int) -> Sequences:
    """One stream of `steps` steps: the sequences one after another, repeated as needed. The
    state is never reset, so labels (which belong to sequences that started fresh) are dropped."""
    flat = np.concatenate(seqs.inputs)
    if len(flat) == 0:
        raise InputError("no input steps to loop")
    idx = np.arange(steps) % len(flat)
    return Sequences((np.ascontiguousarray(flat[idx]),), (None,), seqs.path)


def load_data(
    path: str | os.PathLike,
    step_shape: tuple[int, ...],
    *,
    dtype: str = "float32",
    id_limit: int = 0,
) -> Sequences:
    """Reads --data for a step input of `step_shape` and `dtype`: an .npz whose arrays are
    sequences (T, *step) or batches (N, T, *step) (any array whose rows hold one step's
    worth of values is reshaped, e.g. (T, 40) for a (1, 1, 40) step); floats, or integer token
    ids in [0, id_limit) for an int32/int64 input. An array `NAME_labels` holds the labels of
    array NAME: one per sequence ((), or (N,) for a batch) judging its last step, or one per
    step ((T,) or (N, T))."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a .npy: one array, named after the file
            arrays = {os.path.splitext(os.path.basename(path))[0]: loaded}
        else:
            with loaded as npz:
                arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"--data {path}: cannot read an .npz archive ({e})") from e
    names = [k for k in arrays if not k.endswith(LABEL_SUFFIX)]
    orphans = [
        k for k in arrays if k.endswith(LABEL_SUFFIX) and k[: -len(LABEL_SUFFIX)] not in names
    ]
    if orphans:
        raise InputError(f"--data {path}: {orphans[0]!r} labels no array of that name")
    inputs: list[np.ndarray] = []
    labels: list[np.ndarray | None] = []
    for name in names:
        xs, labs = _split(
            arrays[name],
            arrays.get(name + LABEL_SUFFIX),
            (step_shape, dtype, id_limit),
            f"{path}:{name}",
        )
        inputs += xs
        labels += labs
    if not inputs:
        raise InputError(f"--data {path}: holds no sequences")
    return Sequences(tuple(inputs), tuple(labels), str(path))


def _split(
    arr: np.ndarray, lab: np.ndarray | None, step: Step, what: str
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    seqs = _sequences(arr, step, what)
    single = arr.ndim >= 1 and len(arr) and arr[0].size == int(np.prod(step[0]))
    if single:
        labs = [lab]
    else:
        labs = [None] * len(seqs) if lab is None else list(_batch_labels(lab, len(seqs), what))
    for s, la in zip(seqs, labs):
        _check_labels(la, len(s), what)
    return seqs, labs


def _sequences(arr: np.ndarray, step: Step, what: str) -> list[np.ndarray]:
    shape, dtype, id_limit = step
    if dtype not in INDEX_DTYPES:
        if arr.dtype.kind != "f":
            raise InputError(f"{what}: dtype {arr.dtype} is not a float type")
        return split_sequences(arr, shape, what)
    if arr.dtype.kind not in "iu":  # a float id is a bug upstream: never rounded silently
        raise InputError(
            f"{what}: dtype {arr.dtype} is not an integer type (the model reads {dtype} token ids)"
        )
    seqs = split_sequences(arr, shape, what, dtype)
    return [check_ids(s, s.shape, what, dtype, id_limit) for s in seqs]


def _batch_labels(lab: np.ndarray, n: int, what: str) -> np.ndarray:
    if lab.ndim == 0 or len(lab) != n:
        raise InputError(f"{what}{LABEL_SUFFIX}: needs {n} rows, one per sequence")
    return lab


def _check_labels(lab: np.ndarray | None, steps: int, what: str) -> None:
    if lab is None:
        return
    if lab.dtype.kind not in "iu":
        raise InputError(f"{what}{LABEL_SUFFIX}: labels must be integers, got {lab.dtype}")
    if not (lab.ndim == 0 or lab.shape == (steps,)):
        raise InputError(
            f"{what}{LABEL_SUFFIX}: shape {list(lab.shape)} is neither one label () nor one "
            f"per step ({steps},)"
        )
