"""export_bundle, stage by stage as in ARCHITECTURE.md's data flow:
capture -> [calibrate, plan] -> emit -> golden -> gates -> write."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnedge.export.aliasing import check_distinct
from rnnedge.export.bundle_start import checked_task, golden_inputs, graph_manifest
from rnnedge.export.capture.program import Captured, capture
from rnnedge.export.chunk import add_chunk, chunk_gate
from rnnedge.export.config import ExportConfig, config_from, finite_golden
from rnnedge.export.float_files import float_files
from rnnedge.export.gates import FLOAT_GATE, int8_parity, parity
from rnnedge.export.offline.partition import is_offline
from rnnedge.export.offline.program import export_offline
from rnnedge.export.quantized import add_int8
from rnnedge.export.sequence_gate import gate_over_time
from rnnedge.quantize.calibrate import check_sequences
from rnnedge.runtime.bundle import Bundle, write_bundle
from rnnedge.runtime.manifest import Manifest
from rnnedge.runtime.npzio import write_npz

Files = dict[str, bytes]


def export_bundle(
    model: torch.nn.Module,
    example: Any,
    out: str | os.PathLike,
    config: ExportConfig | None = None,
    **options: Any,
) -> Path:
    """Exports `model` at one step to the bundle directory `out` and returns its path.
    `config` (or the same fields as keyword options: quantize, calibration, percentile,
    golden, task, progress) says how; see ExportConfig."""
    cfg = config_from(config, options)
    check_distinct(example)
    cfg.check_step(example)  # calibration and golden shapes, before any work
    cap = _capture(model, example, cfg)
    if is_offline(cap.graph):  # bidirectional layers: stages over whole sequences, no stream
        return export_offline(model, example, cap.graph, out, cfg)
    files = float_files(cap.graph, cfg.say)
    calib = None if cfg.calibration is None else check_sequences(cap.graph, cfg.calibration)
    cfg.say("recording golden vectors with PyTorch")
    sequences = golden_inputs(cap.graph, cfg.golden, calib)
    data = gate_over_time(model, example, cap.graph, sequences, cfg.say)
    files["golden.npz"] = write_npz(finite_golden(golden_vectors(cap, sequences, data)))
    task = checked_task(cfg.task, cap.graph)
    manifest = graph_manifest(cap.graph, task=task, unbatched_why=cap.unbatched_why)
    if cfg.quantize != "none":
        manifest, files = add_int8(
            cfg.quantize,
            cap.graph,
            calib,
            sequences,
            manifest,
            files,
            cfg.say,
            percentile=cfg.percentile,
            budget=cfg.int8_budget,
            strict=cfg.strict,
        )
    if cfg.chunk:
        manifest, files = add_chunk(cap.graph, cfg.chunk, manifest, files, cfg.say)
        chunk_gate(Bundle(Path(out), manifest, cap.graph, files), cfg.say)
    manifest = _gates(Bundle(Path(out), manifest, cap.graph, files), cfg)
    path = write_bundle(out, manifest, files)
    cfg.say(f"wrote {path}")
    return path


def _capture(model: torch.nn.Module, example: Any, cfg: ExportConfig) -> Captured:
    cfg.say("capturing one step with torch.export")
    if getattr(model, "training", False):  # capture switches it, and back afterwards
        cfg.say("the model is in training mode (as a new nn.Module is): exported in eval mode")
    cap = capture(model, example, probe=cfg.calibration)
    states = ", ".join(cap.graph.state_inputs) or "none"
    cfg.say(f"captured {len(cap.graph.nodes)} ops, states: {states}")
    return cap


def _gates(bundle: Bundle, cfg: ExportConfig) -> Manifest:
    """Every backend against PyTorch in float, then the int8 gates; the manifest with the
    measured parity (and int8 budget). A gate that fails raises: nothing is written."""
    if bundle.manifest.unbatched_why:
        cfg.say(f"streams(n) unavailable (single streams work): {bundle.manifest.unbatched_why}")
    cfg.say("checking every backend against PyTorch")
    results, _ = parity(bundle, "float", FLOAT_GATE, cfg.say)
    manifest = dataclasses.replace(bundle.manifest, parity={**bundle.manifest.parity, **results})
    if cfg.quantize != "none":
        bundle = dataclasses.replace(bundle, manifest=manifest)
        manifest = int8_parity(bundle, manifest, cfg.quantize, cfg.say)
    return manifest


def golden_vectors(
    cap: Captured, sequences: list[np.ndarray], data: list[list[np.ndarray]] | None = None
) -> dict[str, np.ndarray]:
    """PyTorch's outputs and states at every step of each sequence, from the initial state;
    `data` (the user's model run over each sequence, export/sequence_gate.py) replaces the
    captured step's data outputs."""
    g = cap.graph
    arrays: dict[str, np.ndarray] = {}
    for i, seq in enumerate(sequences):
        states = [g.constants[s.init] for s in g.states]
        rows: dict[str, list[np.ndarray]] = {t.name: [] for t in g.outputs}
        for x in seq:
            outs, states = cap.torch_step([x], states)
            for t, v in zip(g.outputs, [*outs, *states]):
                rows[t.name].append(v)
        arrays[f"seq{i}.{g.inputs[0].name}"] = seq
        if data is not None:
            rows.update({t.name: list(v) for t, v in zip(g.data_outputs, data[i])})
        arrays.update({f"seq{i}.{k}": np.stack(v).astype(np.float32) for k, v in rows.items()})
    return arrays
