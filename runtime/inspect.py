"""A human-readable description of a bundle, for `rnnedge inspect`."""

from __future__ import annotations

from collections import Counter

from rnnedge.runtime.bundle import Bundle
from rnnedge.runtime.quant.fidelity_view import describe_fidelity


def describe(bundle: Bundle) -> str:
    m, g = bundle.manifest, bundle.graph
    lines = [f"{bundle.path}  ({m.format} {m.format_version}, made by {m.producer})"]
    lines.append("inputs:")
    lines += [f"  {t.name:24s} {list(t.shape)} {t.dtype}" for t in g.data_inputs]
    lines.append("outputs:")
    lines += [f"  {t.name:24s} {list(t.shape)} {t.dtype}" for t in g.data_outputs]
    lines.append("states (input -> output, initial value):")
    for s in m.states:
        init = "zeros" if s.init_is_zero else f"weights.npz[{s.init}]"
        lines.append(f"  {s.input} -> {s.output}  {list(s.shape)}  {init}")
    if m.stages:  # an offline program (runtime/stages.py)
        program = " -> ".join(f"{st.name} {st.direction}" for st in m.stages)
        lines.append(f"offline program, whole sequences only (model.run): {program}")
        lines.append("model files: per stage, s0.model.onnx ... (see manifest.json 'files')")
    elif m.step_input.batch_axis is not None:
        lines.append(f"streams(n): one batched call, input batch axis {m.step_input.batch_axis}")
    else:
        lines.append(f"streams(n): unavailable ({m.unbatched_why or 'no batch axis'})")
    ops = Counter(n.op for n in g.nodes)
    lines.append(
        f"graph: {len(g.nodes)} ops ({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))})"
    )
    params = sum(int(a.size) for a in g.constants.values())
    lines.append(f"constants: {params} floats ({params * 4 / 1024:.1f} KiB)")
    if m.chunk:
        lines.append(f"chunk models: {m.chunk} steps per call (stream.run on litert/onnxruntime)")
    if m.models:
        lines.append("model files:")
    for f in m.models:
        size = len(bundle.files[f.path])
        lines.append(f"  {f.path:20s} {f.backend:7s} {f.precision:13s} {size / 1024:8.1f} KiB")
    if m.parity:
        lines.append("export-time parity vs PyTorch (max error / max(1, |ref|)):")
        lines += [
            f"  {k:20s} {v.get('max_rel_err', float('nan')):.2e}" for k, v in m.parity.items()
        ]
    if "quant.json" in bundle.files:
        from rnnedge.runtime.quant.describe import describe_plan

        lines += describe_plan(bundle.files["quant.json"])
    lines += describe_fidelity(m.int8_fidelity)
    return "\n".join(lines)
