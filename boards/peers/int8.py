"""The int8 peers of `make bench-int8` (boards/sweeps/int8.py): the same one-step model
quantized by other tools, each as a stepper `step(x) -> y` that carries its own state.

- onnxruntime's quantize_dynamic and quantize_static (QDQ, calibrated on the same sequences,
  state carried) on torch.onnx.export(dynamo=False)'s file of one step, in two forms:
  "cell" (nn.GRUCell / nn.LSTMCell + head with the model's weights: the exporter decomposes
  the cell into Gemm + elementwise ops, which the quantizer can reach) and "op" (the model's
  own forward at T=1, boards/peers/eager.py's one-step module: one ONNX GRU / LSTM node). Both go
  through quant_pre_process first (a dynamo-exported LSTM is not quantized without it; see
  ../shared/notes/measurements.md). Run with the fastest raw call pattern found
  (boards/sweeps/step.py): two IOBindings with swapped state buffers.
- LiteRT on a full-int8 .tflite built by TensorFlow's converter from an equivalent
  tf.function cell (boards/peers/tf_int8_build.py, run under a separate Python with
  tensorflow). Run with set_tensor + invoke + get_tensor.

Each peer reports the op types of its file, so the table says what was really quantized.
Imports torch: never import this module from runtime/.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnedge.boards.peers.eager import step_module
from rnnedge.errors import BackendError
from rnnedge.runtime.backends.litert_backend import LiteRTRunner, interpreter_class, quiet_stderr
from rnnedge.runtime.backends.onnxruntime_backend import OrtRunner, new_session
from rnnedge.runtime.bundle import Bundle

Stepper = Callable[[np.ndarray], np.ndarray]  # one step, state kept inside; returns y
BUILD_SCRIPT = Path(__file__).with_name("tf_int8_build.py")


@dataclass(frozen=True, kw_only=True)
class PeerFile:
    """One quantized peer model: how to open a fresh stepper on it, and what it holds."""

    name: str
    backend: str  # "onnxruntime" | "litert"
    make: Callable[[], Stepper]
    file_bytes: int
    ops: dict[str, int]  # op type -> count in the file
    weights_float: bool = False  # its largest weight stayed float32: not an int8 file


class CellStep(nn.Module):
    """nn.GRUCell / nn.LSTMCell + head with the weights of model.rnn (one layer) and
    model.head: forward(x (1, F), *states (1, H)) -> (y, *states)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        rnn = model.rnn
        self.lstm = isinstance(rnn, nn.LSTM)
        self.cell = (nn.LSTMCell if self.lstm else nn.GRUCell)(rnn.input_size, rnn.hidden_size)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.cell, name).data = getattr(rnn, f"{name}_l0").data.clone()
        self.head = model.head

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.lstm:
            h, c = self.cell(x, (states[0], states[1]))
            return self.head(h), h, c
        h = self.cell(x, states[0])
        return self.head(h), h


def cell_form(model: nn.Module) -> tuple[nn.Module, list[torch.Tensor], int]:
    """(one-step module, initial states, features) of the cell form."""
    step = CellStep(model).eval()
    hidden, n = model.rnn.hidden_size, 2 if step.lstm else 1
    return step, [torch.zeros(1, hidden) for _ in range(n)], model.rnn.input_size


def feeds(step: nn.Module, init: list[torch.Tensor], seqs: list[np.ndarray]) -> list[list]:
    """[x, *states] before every step of every sequence, state carried from the float
    module: what the peers calibrate on. seqs: (T, *anything with F elements)."""
    out = []
    shape = (*init[0].shape[:-1], -1)  # x takes the states' leading axes
    with torch.inference_mode():
        for seq in seqs:
            states = [s.clone() for s in init]
            for x in seq:
                xt = torch.from_numpy(np.ascontiguousarray(x).reshape(shape))
                out.append([xt.numpy().copy(), *(s.numpy().copy() for s in states)])
                states = list(step(xt, *states)[1:])
    return out


def torch_onnx(step: nn.Module, init: list[torch.Tensor], x: torch.Tensor) -> bytes:
    n = len(init)
    names = ["x", *(f"state{i}" for i in range(n))]
    outs = ["y", *(f"state{i}_out" for i in range(n))]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        # the exporter warns on every RNN that batch sizes other than 1 need the states as
        # inputs: they are inputs here
        warnings.simplefilter("ignore", UserWarning)
        path = Path(tmp) / "step.onnx"
        try:
            torch.onnx.export(
                step,
                (x, *init),
                str(path),
                dynamo=False,
                input_names=names,
                output_names=outs,
                opset_version=17,
            )
        except Exception as e:  # torch.onnx raises assorted errors on models it cannot trace
            raise BackendError(f"torch.onnx.export failed: {e}") from e
        return path.read_bytes()


def ort_quantized(float_onnx: bytes, calib: list[list]) -> dict[str, bytes]:
    """{"dynamic": ..., "static": ...}: quantize_dynamic (int8 weights) and quantize_static
    (QDQ, onnxruntime's default u8 activations / s8 weights, MinMax over `calib`)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, names: list[str]) -> None:
            self.it = iter([dict(zip(names, f)) for f in calib])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, pre = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx"
        src.write_bytes(float_onnx)
        quant_pre_process(str(src), str(pre))
        dyn, sta = Path(tmp) / "dynamic.onnx", Path(tmp) / "static.onnx"
        quantize_dynamic(str(pre), str(dyn))
        names = ["x", *(f"state{i}" for i in range(len(calib[0]) - 1))]
        quantize_static(str(pre), str(sta), Reader(_kept_inputs(pre, names)), QuantFormat.QDQ)
        return {"dynamic": dyn.read_bytes(), "static": sta.read_bytes()}


def _kept_inputs(path: Path, names: list[str]) -> list[str | None]:
    """names, with None where the exporter dropped an input it folded away."""
    import onnx

    kept = {i.name for i in onnx.load(str(path)).graph.input}
    return [n if n in kept else None for n in names]


def onnx_ops(data: bytes) -> dict[str, int]:
    import onnx

    nodes = onnx.load_from_string(data).graph.node
    return dict(Counter(f"{n.domain}.{n.op_type}" if n.domain else n.op_type for n in nodes))


def largest_weight_is_float(data: bytes) -> bool:
    """Whether the file's largest initializer is float32: onnxruntime's quantizers leave the
    GRU op's W and R float (it cannot quantize GRU), so such a file is no int8 peer."""
    import onnx

    inits = onnx.load_from_string(data).graph.initializer
    largest = max(inits, key=lambda t: int(np.prod(t.dims)))
    return largest.data_type == onnx.TensorProto.FLOAT


def ort_stepper(data: bytes) -> Stepper:
    """onnxruntime, one thread, the backend's OrtRunner (two IOBindings with swapped state
    buffers, the fastest raw pattern in boards/sweeps/step.py) bound by the file's own names:
    x, y, and every other input with its `_out` output as a state; returns a copy of y."""
    session = new_session(data)
    fixed = lambda d: [n if isinstance(n, int) else 1 for n in d.shape]  # noqa: E731
    ins = {i.name: tuple(fixed(i)) for i in session.get_inputs()}
    y_shape = next(tuple(fixed(o)) for o in session.get_outputs() if o.name == "y")
    runner = OrtRunner(
        session,
        x=("x", ins["x"]),
        outputs=[("y", y_shape)],
        states=[(n, f"{n}_out", shape) for n, shape in ins.items() if n != "x"],
    )
    step, x_shape = runner.step, ins["x"]
    return lambda x: step(x.reshape(x_shape))[0]


def ort_peers(
    make_model: Callable[[], nn.Module], bundle: Bundle, seqs: list[np.ndarray]
) -> list[PeerFile]:
    """quantize_dynamic and quantize_static of both forms (cell, op). make_model builds a
    fresh model: the op form hooks its RNN modules."""
    out = []
    cell, init, features = cell_form(make_model())
    x = torch.zeros(1, features)
    forms = {"cell": (cell, init, x)}
    x_op = torch.zeros(1, 1, features)  # the model's own step shape (batch_first, T=1)
    op_step, op_init = step_module(make_model(), bundle, x_op)
    forms["op"] = (op_step, op_init, x_op)
    for form, (step, states, example) in forms.items():
        calib = feeds(step, states, seqs)
        for how, data in ort_quantized(torch_onnx(step, states, example), calib).items():
            out.append(
                PeerFile(
                    name=f"ort quantize_{how} ({form})",
                    backend="onnxruntime",
                    make=lambda d=data: ort_stepper(d),
                    file_bytes=len(data),
                    ops=onnx_ops(data),
                    weights_float=largest_weight_is_float(data),
                )
            )
    return out


# --- LiteRT int8 from TensorFlow's converter -------------------------------------------------


def tflite_job(model: nn.Module, seqs: list[np.ndarray], job_dir: Path) -> Path:
    """Writes the builder's input for this model (weights, calibration feeds) under a name
    that hashes its contents, and returns where the .tflite will be (a cache: same weights
    and calibration, same file)."""
    cell, init, _ = cell_form(model)
    rows = feeds(cell, init, seqs)
    arrays = {
        "w_ih": cell.cell.weight_ih,
        "w_hh": cell.cell.weight_hh,
        "b_ih": cell.cell.bias_ih,
        "b_hh": cell.cell.bias_hh,
        "w_head": cell.head.weight,
        "b_head": cell.head.bias,
    }
    data = {k: v.detach().numpy().astype(np.float32) for k, v in arrays.items()}
    for i, name in enumerate(["x", "h", "c"][: len(rows[0])]):
        data[f"calib_{name}"] = np.stack([r[i] for r in rows])
    digest = hashlib.sha256()
    for k in sorted(data):
        digest.update(k.encode() + data[k].tobytes())
    kind = "lstm" if cell.lstm else "gru"
    stem = f"{kind}_h{model.rnn.hidden_size}_{digest.hexdigest()[:12]}"
    target = job_dir / f"{stem}.tflite"
    if not target.exists():
        job_dir.mkdir(parents=True, exist_ok=True)
        np.savez(job_dir / f"{stem}.npz", kind=np.array(kind), **data)
    return target


def build_tflite(tf_python: str, job_dir: Path, say: Callable[[str], None]) -> None:
    """Runs the builder on every job in job_dir that has no .tflite yet."""
    todo = [p for p in job_dir.glob("*.npz") if not p.with_suffix(".tflite").exists()]
    if not todo:
        return
    say(f"building {len(todo)} LiteRT int8 peer file(s) with TensorFlow ({tf_python})")
    with tempfile.TemporaryDirectory() as tmp:
        for p in todo:  # the builder converts a whole directory; give it only the new jobs
            Path(tmp, p.name).symlink_to(p.resolve())
        res = subprocess.run([tf_python, str(BUILD_SCRIPT), tmp], capture_output=True, text=True)
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise BackendError(f"TensorFlow conversion failed: {tail}")
        for p in todo:
            built = Path(tmp, p.with_suffix(".tflite").name)
            built.replace(p.with_suffix(".tflite"))
    for p in todo:
        p.unlink()


def has_tensorflow(tf_python: str | None) -> str | None:
    """None if tf_python can import tensorflow, else the reason it cannot be used."""
    if not tf_python:
        return "tensorflow not installed (give --tf-python, see docs/boards.md)"
    try:
        res = subprocess.run(
            [tf_python, "-c", "import tensorflow"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"tensorflow not usable with {tf_python}: {e}"
    if res.returncode != 0:
        return f"tensorflow not installed for {tf_python}"
    return None


def litert_peer(path: Path) -> PeerFile:
    data = path.read_bytes()
    return PeerFile(
        name="litert TF-converter int8",
        backend="litert",
        make=lambda: litert_stepper(data),
        file_bytes=len(data),
        ops=tflite_ops(data),
    )


def tflite_ops(data: bytes) -> dict[str, int]:
    """Op types of a .tflite file (the XNNPACK delegate's own node left out)."""
    details = _interpreter(data)._get_ops_details()
    return dict(Counter(o["op_name"] for o in details if o["op_name"] != "DELEGATE"))


def _interpreter(data: bytes):
    interp = interpreter_class()(model_content=data, num_threads=1)
    with quiet_stderr():
        interp.allocate_tensors()
    return interp


def litert_stepper(data: bytes) -> Stepper:
    """set_tensor + invoke + get_tensor, state fed back (the backend's LiteRTRunner, as
    boards/bench/latency.raw_call uses it), by the names of the file's serving_default
    signature."""
    interp = _interpreter(data)
    sig = interp._get_full_signature_list()["serving_default"]
    ins, outs = sig["inputs"], sig["outputs"]
    names = [n for n in ins if n != "x"]  # the states: h and c, or rnnedge's rnn.h, ...
    state_in = [ins[n] for n in names]
    states = [np.zeros(interp.get_tensor(i).shape, np.float32) for i in state_in]
    outputs = [outs["y"], *(outs[f"{n}_out"] for n in names)]
    runner = LiteRTRunner(interp, [ins["x"], *state_in], outputs, states, n_data=1)
    step, x_shape = runner.step, tuple(interp.get_tensor(ins["x"]).shape)
    return lambda x: step(x.reshape(x_shape))[0]
