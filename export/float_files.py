"""The float files of a step Graph: what every bundle, and every stage of an offline program,
holds before int8 adds its own."""

from __future__ import annotations

import json

from rnnedge.export.c import bundle_c_files
from rnnedge.export.onnx import emit_onnx
from rnnedge.export.tflite import emit_tflite
from rnnedge.progress import Progress
from rnnedge.runtime.graph import Graph
from rnnedge.runtime.npzio import write_npz


def graph_json(graph: Graph) -> bytes:
    return (json.dumps(graph.to_json(), indent=1) + "\n").encode()


def float_files(graph: Graph, say: Progress | None = None) -> dict[str, bytes]:
    """graph.json, weights.npz, the float ONNX and TFLite files and the native backend's C."""
    files = {"graph.json": graph_json(graph), "weights.npz": write_npz(graph.constants)}
    if say is not None:
        say("emitting ONNX and TFLite")
    files["model.onnx"] = emit_onnx(graph)
    files["model.tflite"] = emit_tflite(graph)
    files.update(bundle_c_files(graph, None, say))
    return files
