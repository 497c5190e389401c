"""export(..., chunk=K): the K-step chunk models beside the one-step ones (runtime/chunk.py).

The chunk graph is the step graph unrolled K times; in int8 its plan is the step's plan with
every copy given its tensor's parameters, so a chunk computes what K steps compute. Then a
gate: on each installed interpreter, stream.run over the golden inputs with and without the
chunk models must agree (float within CHUNK_GATE, int8 exactly); otherwise nothing is written.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnedge.errors import ExportError
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.progress import Progress
from rnnedge.runtime.backends import MODEL_FILE_KIND, available_backends, open_backend
from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.check.data import golden_sequences
from rnnedge.runtime.chunk import MAX_CHUNK, chunk_file, chunk_plan, chunked_run, unroll
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import Manifest
from rnnedge.runtime.quant.plan import read_plan

CHUNK_GATE = {"float": 1e-6, "int8": 0.0, "int8-dynamic": 0.0}


def check_chunk(k: int | None) -> None:
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 < k <= MAX_CHUNK):
        raise ExportError(f"chunk={k!r}: must be an integer in 2..{MAX_CHUNK} (steps per chunk)")


def add_chunk(
    graph: Graph, k: int, manifest: Manifest, files: dict[str, bytes], say: Progress
) -> tuple[Manifest, dict[str, bytes]]:
    say(f"emitting {k}-step chunk models")
    unrolled = unroll(graph, k)
    new = dict(files)
    for precision in sorted({m.precision for m in manifest.models}):
        plan = None
        if precision != "float":
            plan = chunk_plan(graph, read_plan(files, "quant.json"), k)
        new[chunk_file("onnx", precision)] = emit_onnx(unrolled, plan)
        new[chunk_file("tflite", precision)] = emit_tflite(unrolled, plan)
    return dataclasses.replace(manifest, chunk=k), new


def chunk_gate(bundle: Bundle, say: Progress) -> None:
    """stream.run over each golden input, chunked against step by step, on every installed
    interpreter and precision: a chunk model that strays computes something else."""
    seqs, _ = golden_sequences(bundle)
    xs = np.concatenate(seqs.inputs)  # one long stream: whole chunks and a remainder
    for backend, fmt in MODEL_FILE_KIND.items():
        if backend not in available_backends():
            continue
        for precision in sorted({m.precision for m in bundle.manifest.models}):
            chunked = chunked_run(bundle, backend, precision)
            stepper, ref = open_backend(bundle, backend, precision).runner(), []
            stepper.set_state([bundle.graph.constants[s.init] for s in bundle.graph.states])
            ref = [stepper.step(x) for x in xs]
            stepper.set_state([bundle.graph.constants[s.init] for s in bundle.graph.states])
            got = chunked.run(stepper, xs)
            err = max(
                float(np.abs(g - np.stack([r[i] for r in ref])).max()) for i, g in enumerate(got)
            )
            say(f"  {backend}/{precision} {bundle.manifest.chunk}-step chunks vs steps: {err:.2e}")
            if err > CHUNK_GATE[precision]:
                raise ExportError(
                    f"{backend} {precision} {fmt} chunk model differs from stepping by {err:.2e} "
                    f"(gate {CHUNK_GATE[precision]:g}); refusing to write it. Please report it."
                )
