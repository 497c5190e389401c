"""export_offline: a model with bidirectional layers -> an offline bundle (format 1.2, with
`stages`; docs/format.md, docs/time.md).

The one-step Graph capture made (every direction a cell with its own state) is cut into
stages (partition.py); each stage is exported like a one-step model of its own (float ONNX
and TFLite; int8 calibrated on ITS input sequences, met in the order it steps through them,
so the reverse cells' ranges are those of the backward scan), and its files are stored under
its name as a prefix. PyTorch's golden vectors come from the model run once over each whole
sequence. The gate runs the whole program on every installed backend against them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from rnnedge.errors import ExportError, UnsupportedModelError
from rnnedge.export.bundle_start import checked_task, golden_inputs, graph_manifest
from rnnedge.export.config import ExportConfig
from rnnedge.export.float_files import float_files, graph_json
from rnnedge.export.offline.gates import offline_gates
from rnnedge.export.offline.partition import StagePlan, partition
from rnnedge.export.offline.reference import sequence_model
from rnnedge.export.quantized import add_int8
from rnnedge.quantize.calibrate import check_sequences
from rnnedge.quantize.mixed import Int8Budget
from rnnedge.runtime.bundle import Bundle, sha256, write_bundle
from rnnedge.runtime.check.offline import golden_arrays
from rnnedge.runtime.executor import Executor
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.manifest import Manifest
from rnnedge.runtime.npzio import write_npz
from rnnedge.runtime.offline import run_program
from rnnedge.runtime.stages import StageSpec

# errors add up along the chain of stages (a 2-layer bidirectional model has five): 1% per stage
# kept a trained tagger's output within 3% at T=300 where the streaming default, 2%, gave 4.2%
STAGE_BUDGET = Int8Budget(max_err_pct=1.0)


Files = dict[str, bytes]


def export_offline(
    model: torch.nn.Module, example: object, graph: Graph, out: str | os.PathLike, cfg: ExportConfig
) -> Path:
    if isinstance(example, tuple):
        raise UnsupportedModelError(
            "a model with bidirectional layers runs offline from its initial states: give the "
            "example as one tensor, not (x, *states)"
        )
    if cfg.chunk:
        raise ExportError(
            "chunk=K applies to streaming bundles; an offline program (bidirectional layers) "
            "runs whole sequences already"
        )
    plans = partition(graph)
    cfg.say(f"offline program: {' -> '.join(f'{p.name} {p.direction}' for p in plans)}")
    ref = sequence_model(model, example, graph)
    x_name = graph.inputs[0].name
    golden = golden_inputs(graph, cfg.golden, cfg.calibration)
    cfg.say("recording golden vectors with PyTorch over whole sequences")
    files: Files = {
        "graph.json": graph_json(graph),
        "weights.npz": write_npz(graph.constants),
        "golden.npz": write_npz(golden_arrays(x_name, golden, graph, [ref(xs) for xs in golden])),
    }
    float_program = [(_spec(p), p.graph, _float_run(p.graph)) for p in plans]
    calib = None if cfg.calibration is None else check_sequences(graph, cfg.calibration)
    scheme = None
    for p in plans:
        cfg.say(f"stage {p.name} ({p.direction}): {len(p.graph.nodes)} ops")
        manifest = graph_manifest(p.graph, unbatched_why="a stage of an offline program")
        stage_files = float_files(p.graph)
        if cfg.quantize != "none":
            manifest, stage_files = add_int8(
                cfg.quantize,
                p.graph,
                _stage_inputs(float_program, x_name, calib, p.name),
                _stage_inputs(float_program, x_name, golden, p.name) or [],
                manifest,
                stage_files,
                cfg.say,
                percentile=cfg.percentile,
                budget=cfg.int8_budget or STAGE_BUDGET,
                strict=cfg.strict,
                # a stage's states are data to the stages after it: the budget holds them too
                judged=tuple(t.name for t in p.graph.outputs),
            )
            scheme = manifest.int8_scheme
        manifest = dataclasses.replace(
            manifest, files={n: sha256(b) for n, b in sorted(stage_files.items())}
        )
        stage_files["manifest.json"] = manifest.to_json().encode()
        files.update({f"{p.name}.{n}": b for n, b in stage_files.items()})
    top = _manifest(graph, plans, cfg, scheme)
    bundle = Bundle(Path(out), top, graph, files)
    top = offline_gates(bundle, cfg.quantize, cfg.say)
    path = write_bundle(out, top, files)
    cfg.say(f"wrote {path}")
    return path


def _spec(p: StagePlan) -> StageSpec:
    return StageSpec(name=p.name, direction=p.direction, inputs=p.inputs)


def _float_run(graph: Graph):
    executor = Executor(graph)
    ins, outs = [t.name for t in graph.inputs], [t.name for t in graph.outputs]

    def run(feeds: list[np.ndarray]) -> list[np.ndarray]:
        values = executor.run(dict(zip(ins, feeds)))
        return [values[n] for n in outs]

    return run


def _stage_inputs(program, x_name: str, seqs, stage: str) -> list[np.ndarray] | None:
    """Each sequence's input to `stage`, in the order the stage steps through it."""
    if seqs is None:
        return None
    out = []
    for xs in seqs:
        packed: dict[str, np.ndarray] = {}
        run_program(program, {x_name: xs}, packed)
        out.append(packed[stage])
    return out


def _manifest(graph: Graph, plans: list[StagePlan], cfg: ExportConfig, scheme) -> Manifest:
    return graph_manifest(
        graph,
        models=(),  # every model file belongs to a stage
        int8_scheme=scheme,
        task=checked_task(cfg.task, graph),
        unbatched_why="an offline program runs whole sequences (model.run), not streams",
        stages=tuple(_spec(p) for p in plans),
    )
