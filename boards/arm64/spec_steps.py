"""int8 against the numpy integer spec on this machine (docs/arm64.md, "Checking int8 bit for
bit"): every int8 backend here, and LiteRT's builtin kernels (no delegate), against
Int8Executor in the rounding that backend is held to on this machine (`rnnedge check`'s
runtime/check/spec_drift.py: spec_rounding, "tflite" for LiteRT on arm64, "fp32" otherwise;
the builtin kernels always "tflite"), over the same inputs, two ways:
  step - both get the spec's state before every step (what `rnnedge check` measures);
  free - the backend carries its own state from step to step, as deployed.
Per output and state, the worst difference in quantisation steps (an int16 tensor in steps of
256 of its own, as runtime/check/steps.py counts; a float tensor, the float LSTM cell, as max
abs). More than LIMIT steps on an integer tensor, either way, fails the arm64 check.

Needs numpy and the rnnedge runtime only, never torch: it runs inside the emulated root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

LIMIT = 2.0  # rnnedge check's SPEC_STEPS_LIMIT, and issue 16's "within 2 quantisation steps"
BUILTIN = "litert-builtin"  # LiteRT without its default delegate (XNNPACK): TFLite's kernels


class BuiltinLiteRT:
    """The int8 .tflite on LiteRT's builtin kernels (BUILTIN_WITHOUT_DEFAULT_DELEGATES): run
    as a backend session is (feeds [x, *states] -> [*data outputs, *states])."""

    def __init__(self, bundle) -> None:
        from ai_edge_litert import interpreter as litert

        kind = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        data = bundle.model_bytes("tflite", "int8")
        self.interp = litert.Interpreter(model_content=data, experimental_op_resolver_type=kind)
        self.interp.allocate_tensors()
        details = self.interp.get_input_details() + self.interp.get_output_details()
        index = {d["name"]: d["index"] for d in details}
        self.inputs = [index[t.name] for t in bundle.graph.inputs]
        self.outputs = [index[t.name] for t in bundle.graph.outputs]

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        for i, value in zip(self.inputs, feeds):
            self.interp.set_tensor(i, value)
        self.interp.invoke()
        return [self.interp.get_tensor(i) for i in self.outputs]


def units(bundle, plan) -> list[float | None]:
    """One quantisation step of each graph output (data outputs, then states), None for a
    float one."""
    out: list[float | None] = []
    for t in bundle.graph.outputs:
        q = plan.activation(t.name)
        if q is None or q.dtype == "float32":
            out.append(None)
        else:
            out.append(float(q.scale[0]) * (256 if q.dtype == "int16" else 1))
    return out


def sessions(bundle, machine: str | None = None) -> list[tuple[str, str, object]]:
    """(name, spec rounding, session) of every int8 interpreter installed here that the
    bundle has a file for."""
    from rnnedge.runtime.backends import available_backends, open_backend
    from rnnedge.runtime.check.spec_drift import spec_rounding

    have = set(available_backends())
    files = {m.backend for m in bundle.manifest.models if m.precision == "int8"}
    found = []
    if "litert" in have and "tflite" in files:
        found.append(
            ("litert", spec_rounding("litert", machine), open_backend(bundle, "litert", "int8"))
        )
        found.append((BUILTIN, "tflite", BuiltinLiteRT(bundle)))
    if "onnxruntime" in have and "onnx" in files:
        rounding = spec_rounding("onnxruntime", machine)
        found.append(("onnxruntime", rounding, open_backend(bundle, "onnxruntime", "int8")))
    return found


def spec_run(bundle, plan, rounding: str, xs: np.ndarray) -> tuple[list, list]:
    """The spec free-running over xs from the initial state: the states fed before each step
    and each step's outputs (data outputs, then states)."""
    from rnnedge.runtime.quant.int8 import Int8Executor

    g = bundle.graph
    ex = Int8Executor(g, plan, rounding=rounding)
    names, n_data = [g.inputs[0].name, *(s.input for s in g.states)], len(g.data_outputs)
    state = [g.constants[s.init].copy() for s in g.states]
    fed, outs = [], []
    for x in xs:
        fed.append(state)
        got = ex.run(dict(zip(names, [x, *state])))
        row = [np.asarray(got[t.name]) for t in g.outputs]
        outs.append(row)
        state = [np.asarray(s, np.float32) for s in row[n_data:]]
    return fed, outs


def _apart(a: np.ndarray, b: np.ndarray, unit: float | None) -> float:
    d = float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(initial=0.0))
    # both sides dequantize to float32: an equal integer can differ by an ulp (1e-5 steps)
    return d if unit is None else round(d / unit, 3)


def apart(session, xs: np.ndarray, fed: list, ref: list, unit: list, n_data: int) -> dict:
    """{"step": {output: worst}, "free": {output: worst}} of `session` against the spec's
    run (fed, ref) over xs, in steps (or abs for a float output, unit None)."""
    own = fed[0]
    worst = {"step": [0.0] * len(unit), "free": [0.0] * len(unit)}
    for t, x in enumerate(xs):
        step = session.run([x, *fed[t]])
        free = session.run([x, *own])
        own = [np.asarray(s, np.float32) for s in free[n_data:]]
        for j, u in enumerate(unit):
            worst["step"][j] = max(worst["step"][j], _apart(step[j], ref[t][j], u))
            worst["free"][j] = max(worst["free"][j], _apart(free[j], ref[t][j], u))
    return worst


ROUNDINGS = ("fp32", "tflite")


def measure(bundle, xs: np.ndarray, machine: str | None = None) -> tuple[str, list]:
    """JSON of every int8 session here against the spec in both roundings over xs ("held":
    the one it is held to here; the other is reported, not gated), and the "fp32" spec's
    free-running outputs (the numpy backend's int8: compare.py records them as such)."""
    from rnnedge.runtime.quant.plan import read_plan

    plan = read_plan(bundle.files, str(bundle.path))
    g, unit = bundle.graph, units(bundle, plan)
    runs = {r: spec_run(bundle, plan, r, xs) for r in ROUNDINGS}
    result = {"outputs": [t.name for t in g.outputs], "unit": unit, "steps": len(xs)}
    for name, held, session in sessions(bundle, machine):
        result[name] = {"held": held}
        for r, (fed, ref) in runs.items():
            result[name][r] = apart(session, xs, fed, ref, unit, len(g.data_outputs))
    return json.dumps(result), runs["fp32"][1]


# ---- report: pure functions over the recorded JSON (tests/boards/test_arm64_spec.py)


@dataclass(frozen=True)
class SpecRow:
    bundle: str
    backend: str
    output: str
    integer: bool  # False: a float tensor, step and free are max abs
    machine: str
    rounding: str  # the spec's
    held: bool  # the rounding the backend is held to on this machine (gated)
    step: float
    free: float


def spec_rows(bundle: str, machine: str, text: str) -> list[SpecRow]:
    r = json.loads(text)
    rows = []
    for backend, m in r.items():
        if not isinstance(m, dict):
            continue
        for rounding in (k for k in ROUNDINGS if k in m):
            for j, (name, u) in enumerate(zip(r["outputs"], r["unit"])):
                step, free = m[rounding]["step"][j], m[rounding]["free"][j]
                held = rounding == m["held"]
                rows.append(
                    SpecRow(
                        bundle, backend, name, u is not None, machine, rounding, held, step, free
                    )
                )
    return rows


def spec_failures(rows: list[SpecRow]) -> list[str]:
    return [
        f"{r.bundle} {r.backend}/int8 on {r.machine}: {r.output!r} {mode} {v:g} quantisation "
        f"steps from the {r.rounding!r} spec (limit {LIMIT:g})"
        for r in rows
        if r.integer and r.held
        for mode, v in (("step by step", r.step), ("free-running", r.free))
        if v > LIMIT
    ]


def _fmt(v: float, integer: bool, held: bool) -> str:
    if integer:
        text = f"{v:.0f}" if abs(v - round(v)) < 1e-3 else f"{v:.2f}"
    else:
        text = "0" if v == 0 else f"{v:.1e}"
    return f"**{text}**" if held else text


def _order(item: tuple) -> tuple:
    bundle, backend, output, rounding = item[0]
    return bundle, backend, rounding, output


def spec_table(rows: list[SpecRow]) -> str:
    """One line per bundle, backend, output and spec rounding; per machine step and free
    (quantisation steps; a float tensor, marked (f), max abs), in bold where that rounding is
    the one the backend is held to on that machine."""
    machines = list(dict.fromkeys(r.machine for r in rows))
    head = ["bundle", "backend", "output", "spec"]
    for m in machines:
        head += [f"{m} step", f"{m} free"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by: dict[tuple[str, str, str, str], dict[str, SpecRow]] = {}
    for r in rows:
        by.setdefault((r.bundle, r.backend, r.output, r.rounding), {})[r.machine] = r
    for (bundle, backend, output, rounding), per in sorted(by.items(), key=_order):
        first = next(iter(per.values()))
        cells = [bundle, backend, output if first.integer else f"{output} (f)", rounding]
        for m in machines:
            r = per.get(m)
            cells += (
                [_fmt(r.step, r.integer, r.held), _fmt(r.free, r.integer, r.held)]
                if r
                else ["-"] * 2
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spec_summary(rows: list[SpecRow]) -> str:
    """Per bundle and backend, on each machine: the spec it is held to there, and the worst
    step-by-step / free-running steps over its integer outputs and states."""
    machines = list(dict.fromkeys(r.machine for r in rows))
    head = ["bundle", "backend", *machines]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    worst: dict[tuple[str, str], dict[str, tuple[str, float, float]]] = {}
    for r in rows:
        if not (r.held and r.integer):
            continue
        per = worst.setdefault((r.bundle, r.backend), {})
        _, step, free = per.get(r.machine, (r.rounding, 0.0, 0.0))
        per[r.machine] = (r.rounding, max(step, r.step), max(free, r.free))
    for (bundle, backend), per in sorted(worst.items()):
        cells = [bundle, backend]
        for m in machines:
            w = per.get(m)
            cells.append(
                f"{w[0]}: {_fmt(w[1], True, False)} / {_fmt(w[2], True, False)}" if w else "-"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
