"""Builds the LiteRT int8 peer of `make bench-int8` with TensorFlow's own converter.

    TF_PYTHON boards/peers/tf_int8_build.py JOB_DIR

Runs under a Python that has tensorflow (a separate, throwaway venv: tensorflow is no
dependency of rnnedge, see docs/boards.md), so it imports nothing from rnnedge. For every
JOB_DIR/NAME.npz written by boards/peers/int8.py (kind "gru" or "lstm", PyTorch's weights of
the cell and the head, and calibration feeds recorded from the float cell with the state
carried) it writes JOB_DIR/NAME.tflite: the same one-step cell as a tf.function, converted to
full int8 (TFLITE_BUILTINS_INT8: int8 weights and activations, float32 inputs and outputs,
quantized on entry and dequantized on exit), calibrated on those feeds. Inputs are named
x, h (and c); outputs y, h_out (and c_out), in the file's serving_default signature.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf


def _gru(w: dict[str, np.ndarray]):
    """PyTorch GRU gates r, z, n; the reset gate applies after the hidden matmul."""
    w_ih, w_hh = tf.constant(w["w_ih"].T), tf.constant(w["w_hh"].T)
    b_ih, b_hh = tf.constant(w["b_ih"]), tf.constant(w["b_hh"])
    w_y, b_y = tf.constant(w["w_head"].T), tf.constant(w["b_head"])

    def step(x, h):
        ir, iz, i_n = tf.split(tf.matmul(x, w_ih) + b_ih, 3, axis=1)
        hr, hz, hn = tf.split(tf.matmul(h, w_hh) + b_hh, 3, axis=1)
        r, z = tf.sigmoid(ir + hr), tf.sigmoid(iz + hz)
        n = tf.tanh(i_n + r * hn)
        h2 = n + z * (h - n)  # (1 - z) n + z h
        return {"y": tf.matmul(h2, w_y) + b_y, "h_out": h2}

    return step


def _lstm(w: dict[str, np.ndarray]):
    """PyTorch LSTM gates i, f, g, o; both biases folded into one."""
    w_ih, w_hh = tf.constant(w["w_ih"].T), tf.constant(w["w_hh"].T)
    b = tf.constant(w["b_ih"] + w["b_hh"])
    w_y, b_y = tf.constant(w["w_head"].T), tf.constant(w["b_head"])

    def step(x, h, c):
        i, f, g, o = tf.split(tf.matmul(x, w_ih) + tf.matmul(h, w_hh) + b, 4, axis=1)
        c2 = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h2 = tf.sigmoid(o) * tf.tanh(c2)
        return {"y": tf.matmul(h2, w_y) + b_y, "h_out": h2, "c_out": c2}

    return step


def convert(job: Path) -> bytes:
    data = dict(np.load(job))
    kind = str(data["kind"])
    features, hidden = data["w_ih"].shape[1], data["w_hh"].shape[1]
    names = ["x", "h"] + (["c"] if kind == "lstm" else [])
    sizes = [features, hidden, hidden]
    specs = [tf.TensorSpec([1, n], tf.float32, name=k) for k, n in zip(names, sizes)]
    fn = tf.function((_gru if kind == "gru" else _lstm)(data), input_signature=specs)
    concrete = fn.get_concrete_function()
    feeds = {k: data[f"calib_{k}"] for k in names}  # (steps, 1, size) each

    def representative():  # by name: the SavedModel signature orders its inputs its own way
        for i in range(len(feeds["x"])):
            yield {k: f[i] for k, f in feeds.items()}

    module = tf.Module()
    module.step = fn
    with tempfile.TemporaryDirectory() as tmp:  # a SavedModel keeps the signature's names
        tf.saved_model.save(module, tmp, signatures=concrete)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return conv.convert()


def main() -> None:
    job_dir = Path(sys.argv[1])
    for job in sorted(job_dir.glob("*.npz")):
        out = job.with_suffix(".tflite")
        out.write_bytes(convert(job))
        print(f"wrote {out} ({out.stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    main()
