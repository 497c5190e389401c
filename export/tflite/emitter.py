"""Emitter: collects the TFLite tensors and operators that one Graph lowers to.

Graph tensors keep their Graph names (so a runtime finds inputs and outputs by name); tensors
that a lowering adds (permutations, shapes, intermediate layouts) are named after the node's
output with a suffix, e.g. "y:perm". The Emitter lives for one `emit_tflite` call and hands
its result on as an immutable `Program`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tflite

from rnnedge.errors import ExportError
from rnnedge.export.tflite.writer import OperatorDef, Options, Program, QuantDef, TensorDef
from rnnedge.runtime.graph import Graph, Node

FLOAT32 = tflite.TensorType.FLOAT32
INT32 = tflite.TensorType.INT32
INT8 = tflite.TensorType.INT8
INT16 = tflite.TensorType.INT16
# the Graph's tensor dtypes (runtime/graph.py DTYPES): integers are an embedding's token ids
DTYPES = {"float32": FLOAT32, "int32": INT32, "int64": tflite.TensorType.INT64}


class Emitter:
    def __init__(self, graph: Graph, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self._constants = graph.constants
        self._shapes = dict(shapes)  # grows with `activation` (named tensors a lowering adds)
        self._tensors: list[TensorDef] = []
        self._operators: list[OperatorDef] = []
        self._index: dict[str, int] = {}  # tensor name -> index, for every tensor added
        self._shared: dict[tuple, int] = {}  # int32 operand contents -> its one tensor
        io = (*graph.inputs, *graph.outputs)
        self._batch_axes = {t.name: t.batch_axis for t in io if t.batch_axis is not None}
        self._dtypes = {t.name: DTYPES[t.dtype] for t in io}

    def tensor(self, name: str) -> int:
        """The TFLite tensor of Graph tensor `name`; a Graph constant becomes a float32 buffer."""
        if name not in self._index:
            value = self._constants.get(name)
            data = None if value is None else np.asarray(value, "<f4").tobytes()
            shape = tuple(self._shapes[name])
            signature = None
            if name in self._batch_axes:
                axis = self._batch_axes[name]
                signature = tuple(-1 if i == axis else d for i, d in enumerate(shape))
            dtype = self._dtypes.get(name, FLOAT32)
            self._add(TensorDef(name, shape, dtype, data, signature))
        return self._index[name]

    def activation(
        self, name: str, shape: Sequence[int], dtype: int, quant: QuantDef | None = None
    ) -> int:
        """A named activation tensor of any type (e.g. an int8 tensor with its per-tensor
        parameters); later `tensor(name)` and `shape(name)` find it, so float lowerings can
        read it by name."""
        if name in self._index:
            raise ExportError(f"TFLite export: tensor {name!r} is defined twice")
        return self._add(TensorDef(name, tuple(shape), dtype, quantization=quant))

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._shapes[name])

    def tensor_shape(self, index: int) -> tuple[int, ...]:
        return self._tensors[index].shape

    def constant(self, name: str) -> np.ndarray | None:
        """The value of Graph tensor `name` if it is a constant, else None."""
        value = self._constants.get(name)
        return None if value is None else np.asarray(value, np.float32)

    def temp(self, hint: str, shape: Sequence[int], dtype: int = FLOAT32) -> int:
        """A new activation tensor (float32 unless said) that only this lowering uses."""
        return self._add(TensorDef(self._fresh(hint), tuple(shape), dtype))

    def const_f32(self, hint: str, value: np.ndarray | float) -> int:
        array = np.asarray(value, "<f4")
        return self._add(TensorDef(self._fresh(hint), array.shape, FLOAT32, array.tobytes()))

    def const_int8(self, hint: str, value: np.ndarray, quant: QuantDef) -> int:
        """An int8 constant with its QuantizationParameters (e.g. per-channel weights)."""
        array = np.asarray(value, np.int8)
        t = TensorDef(self._fresh(hint), array.shape, INT8, array.tobytes(), quantization=quant)
        return self._add(t)

    def const_quantized(
        self, hint: str, value: np.ndarray, dtype: int, quant: QuantDef | None
    ) -> int:
        """An integer constant (INT8 / INT16 / INT32, e.g. an int32 bias) with its parameters
        (None: plain integers, no kernel reads parameters from it)."""
        np_type = {INT8: "<i1", INT16: "<i2", INT32: "<i4"}[dtype]
        array = np.asarray(value).astype(np_type)
        t = TensorDef(self._fresh(hint), array.shape, dtype, array.tobytes(), quantization=quant)
        return self._add(t)

    def const_i32(self, hint: str, value: Sequence[int] | Sequence[Sequence[int]]) -> int:
        # Shape, axis, perm and padding operands are int32 tensors in TFLite. Kernels only
        # read them, so equal ones are one tensor (a GRU's six slices need 7 distinct
        # begin/end/stride vectors, not 18: each tensor costs ~100 bytes of tables and name)
        array = np.asarray(value, "<i4")
        if array.size == 0:
            array = array.reshape(0)  # an empty list is a [0] vector, e.g. the shape of a scalar
        key = (array.shape, array.tobytes())
        if key not in self._shared:
            t = TensorDef(self._fresh(hint), array.shape, INT32, array.tobytes())
            self._shared[key] = self._add(t)
        return self._shared[key]

    def op(
        self,
        code: int,
        inputs: Sequence[int],
        outputs: Sequence[int],
        options: Options | None = None,
        *,
        version: int = 1,
    ) -> None:
        op = OperatorDef(code, tuple(inputs), tuple(outputs), options, version)
        self._operators.append(op)

    def program(self, inputs: Sequence[str], outputs: Sequence[str]) -> Program:
        ins, outs = [self.tensor(n) for n in inputs], [self.tensor(n) for n in outputs]
        return Program(
            tensors=tuple(self._tensors),
            operators=tuple(self._operators),
            inputs=tuple(ins),
            outputs=tuple(outs),
        )

    def name(self, index: int) -> str:
        return self._tensors[index].name

    def fresh(self, hint: str) -> str:
        """A tensor name not used yet: `hint`, or `hint` with a numeric suffix."""
        return self._fresh(hint)

    def _add(self, t: TensorDef) -> int:
        self._shapes.setdefault(t.name, t.shape)  # every tensor's shape, by name
        self._index[t.name] = len(self._tensors)
        self._tensors.append(t)
        return self._index[t.name]

    def _fresh(self, hint: str) -> str:
        name, n = hint, 1
        while name in self._index or name in self._shapes:
            name, n = f"{hint}_{n}", n + 1
        return name


def fail(node: Node, why: str) -> ExportError:
    """The error for a node the TFLite emitter cannot lower: names the op, output and source."""
    where = f" (from {node.source})" if node.source else ""
    out = node.outputs[0] if node.outputs else "?"
    return ExportError(f"TFLite export: op {node.op!r} producing {out!r}{where}: {why}")
