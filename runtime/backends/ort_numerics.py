"""The onnxruntime session settings that keep an integer file computing what it says.

onnxruntime's graph transformers (on from ORT_ENABLE_BASIC) rewrite quantised graphs for
speed, and some of those rewrites change the numbers. Measured on onnxruntime 1.32:
`WeightBiasQuantization` turns DequantizeLinear -> Conv(float W, float b) -> QuantizeLinear
(the float conv island of an int8 file) into a Conv on int8 weights and an int32 bias, a
different computation from the numpy integer spec: a conv -> LSTM model drifted 3 steps from
the spec, a trained VAD 18, where LiteRT is 0 apart. The QDQ family (node-unit fusions into
QLinear ops, DQ/Q propagation) is switched off as a whole by `session.disable_quant_qdq`
(onnxruntime_session_options_config_keys.h); rnnedge's int8 files already name their
integer kernels (QLinearMatMul, QLinearAdd, ...), so nothing is lost: measured the same step
time with and without it (GRU 128: 21.4 vs 20.4 us; conv -> LSTM: 23.3 vs 22.9 us). The
rewrite is also disabled by name in case a later onnxruntime moves it out of that family.
Float files keep every optimisation: their fusions only reassociate float sums.
"""

from __future__ import annotations

from typing import Any

# transformers whose rewrites change an integer file's numerics, disabled by name
INT_DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)
# session config entries for integer files (key -> value)
INT_CONFIG = {"session.disable_quant_qdq": "1"}


def integer_session_kwargs(options: Any, precision: str) -> dict[str, Any]:
    """Sets up `options` (an onnxruntime SessionOptions) for a file of `precision` and
    returns the extra InferenceSession keyword arguments it needs."""
    if precision == "float":
        return {}
    for key, value in INT_CONFIG.items():
        options.add_session_config_entry(key, value)
    return {"disabled_optimizers": list(INT_DISABLED_OPTIMIZERS)}
