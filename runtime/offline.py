"""Offline programs: a bundle with `stages` (runtime/stages.py) run over whole sequences.

`run_program` is the one stage loop: each stage steps through the sequence forward or
backward from its initial state, its input at step t being the tensors it reads (the model's
input or earlier stages' outputs at t) flattened and concatenated. Export calibrates and
checks with it on the float Graph; OfflineBackend runs it on any backend, each stage opened
as the version-1 bundle its prefixed files form. Such a bundle cannot stream: its reverse
stages read the sequence from the end, so `runner()` (Model.stream(), streams(n)) refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from rnnedge.errors import BundleError, GraphError, InputError, StreamsError
from rnnedge.runtime.backends import Backend, open_backend
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.inputs import check_array
from rnnedge.runtime.manifest import Manifest
from rnnedge.runtime.npzio import read_npz
from rnnedge.runtime.stages import StageSpec

RunFn = Callable[[list[np.ndarray]], list[np.ndarray]]  # [input, *states] -> [*outs, *states]


def run_program(
    stages: Sequence[tuple[StageSpec, Graph, RunFn]],
    inputs: dict[str, np.ndarray],
    packed: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every stage in order over the sequences in `inputs` (name -> (T, *shape)). Returns
    every program tensor by name, (T, *shape). `packed`, when given, receives each stage's
    input sequence in the order the stage stepped through it (what calibration needs)."""
    env = dict(inputs)
    steps = len(next(iter(inputs.values())))
    for spec, graph, run in stages:
        flat = np.concatenate([env[t].reshape(steps, 1, -1) for t in spec.inputs], axis=2)
        order = range(steps) if spec.direction == "forward" else range(steps - 1, -1, -1)
        if packed is not None:
            packed[spec.name] = flat[list(order)]
        states = [graph.constants[s.init] for s in graph.states]
        n_data = len(graph.outputs) - len(states)
        rows: list[list[np.ndarray]] = [[] for _ in range(steps)]
        for t in order:
            outs = run([flat[t], *states])
            states = [np.array(s, np.float32) for s in outs[n_data:]]
            rows[t] = outs
        for i, out in enumerate(graph.outputs):
            env[out.name] = np.stack([np.asarray(r[i], np.float32) for r in rows])
    return env


def stage_bundle(bundle: Bundle, spec: StageSpec) -> Bundle:
    """The version-1 bundle stage `spec`'s files form (hashes checked with the whole)."""
    prefix = spec.file("")
    files = {n.removeprefix(prefix): b for n, b in bundle.files.items() if n.startswith(prefix)}
    where = f"{bundle.path}/{prefix}*"
    try:
        manifest = Manifest.from_json(files["manifest.json"])
        doc = json.loads(files["graph.json"])
        graph = Graph.from_json(doc, read_npz(files["weights.npz"], what=f"{where} weights"))
    except KeyError as e:
        raise BundleError(f"{where}: stage {spec.name} lacks its file {e}") from e
    except (ValueError, GraphError) as e:
        raise BundleError(f"{where}: stage {spec.name} is malformed ({e})") from e
    listed = [*manifest.files, *(m.path for m in manifest.models)]
    for name in listed:
        if name not in files:
            raise BundleError(f"{where}: stage {spec.name} lacks its file {name}")
    if graph.inputs[0].shape[:1] != (1,) or len(graph.inputs[0].shape) != 2:
        raise BundleError(f"{where}: stage {spec.name}'s input must be (1, N)")
    return Bundle(path=bundle.path, manifest=manifest, graph=graph, files=files)


class OfflineBackend:
    """Each stage's own backend, run as one program over a whole sequence."""

    def __init__(self, bundle: Bundle, name: str, precision: str) -> None:
        self._bundle = bundle
        self.stages = []
        for spec in bundle.manifest.stages:
            sub = stage_bundle(bundle, spec)
            self.stages.append((spec, sub.graph, open_backend(sub, name, precision)))
        first: Backend = self.stages[0][2]
        self.name = first.name
        self.label = f"{first.label} x {len(self.stages)} stages"
        self._x = bundle.manifest.step_input
        self.data_outputs = bundle.graph.data_outputs

    def run_sequence(self, xs: object) -> np.ndarray | tuple[np.ndarray, ...]:
        """xs (T, *step shape) -> each output (T, *output step shape), as Stream.run."""
        arr = np.asarray(xs)
        shape = self._x.shape
        if arr.ndim != len(shape) + 1 or len(arr) == 0:
            dims = ", ".join(map(str, shape))
            raise InputError(f"run: xs must be (T, {dims}) with T >= 1, got {list(arr.shape)}")
        arr = check_array(arr, (len(arr), *shape), "run: xs")
        program = [(spec, graph, backend.run) for spec, graph, backend in self.stages]
        env = run_program(program, {self._x.name: arr})
        outs = tuple(env[t.name] for t in self.data_outputs)
        return outs[0] if len(outs) == 1 else outs

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        raise self._offline()

    def runner(self, streams: int = 1):
        raise self._offline()

    def _offline(self) -> StreamsError:
        return StreamsError(
            f"{self._bundle.path}: this bundle is offline-only (a bidirectional model reads "
            "the sequence from both ends), so it cannot stream; run whole sequences with "
            "model.run(xs)"
        )
