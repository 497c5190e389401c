"""Serialises a lowered TFLite program into a flatbuffer with the flatc-generated `tflite` bindings.

The hand-off from lowering is a `Program`: plain tensors and operators that refer to each other
by index. This module knows the schema (tensorflow/compiler/mlir/lite/schema/schema.fbs) and
nothing about the Graph IR. Flatbuffers are built back to front, so every string, vector and
child table is created before the table that holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import flatbuffers
import tflite

SCHEMA_VERSION = 3  # Model.version: the only version current runtimes accept
FILE_IDENTIFIER = b"TFL3"
SIGNATURE_KEY = "serving_default"
BUFFER_ALIGNMENT = 16  # converters align constant data so kernels may read it in place


@dataclass(frozen=True)
class Options:
    """One builtin options table: `kind` names the schema table (and its BuiltinOptions tag);
    `fields` are (field name as in the generated `<kind>Add<Field>` function, value) pairs."""

    kind: str
    fields: tuple[tuple[str, int | bool], ...] = ()


@dataclass(frozen=True)
class QuantDef:
    """A tensor's QuantizationParameters (schema.fbs): real = scale * (q - zero_point), one
    scale and zero point per index along `dimension` (per channel) or a single pair."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    dimension: int = 0


@dataclass(frozen=True)
class TensorDef:
    name: str
    shape: tuple[int, ...]
    dtype: int  # tflite.TensorType
    data: bytes | None = None  # little-endian contents of a constant; None for activations
    # shape with -1 on the batch axis of a batched graph's inputs and outputs, which lets
    # the interpreter resize them (Interpreter.resize_tensor_input) to step n streams at once
    shape_signature: tuple[int, ...] | None = None
    quantization: QuantDef | None = None  # int8 weights of an int8/int8-dynamic model


@dataclass(frozen=True)
class OperatorDef:
    code: int  # tflite.BuiltinOperator
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: Options | None = None
    version: int = 1  # OperatorCode.version: the runtime looks kernels up by (code, version)


@dataclass(frozen=True)
class Program:
    """One subgraph. Inputs/outputs are tensor indices; the signature keys are tensor names."""

    tensors: tuple[TensorDef, ...]
    operators: tuple[OperatorDef, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = "rnnedge"


def write_program(program: Program) -> bytes:
    b = flatbuffers.Builder(1024)
    buffers, tensors = _write_tensors(b, program.tensors)
    codes = list(dict.fromkeys((op.code, op.version) for op in program.operators))
    shared: dict[Options, int] = {}  # equal options tables, written once
    operators = [
        _write_operator(b, op, codes.index((op.code, op.version)), shared)
        for op in program.operators
    ]
    subgraph = _write_subgraph(b, program, tensors, operators)
    signature = _write_signature(b, program)
    opcodes = [_write_opcode(b, code, version) for code, version in codes]
    description = b.CreateString(program.description)

    opcodes_vec = _table_vector(b, tflite.ModelStartOperatorCodesVector, opcodes)
    subgraphs_vec = _table_vector(b, tflite.ModelStartSubgraphsVector, [subgraph])
    buffers_vec = _table_vector(b, tflite.ModelStartBuffersVector, buffers)
    signatures_vec = _table_vector(b, tflite.ModelStartSignatureDefsVector, [signature])
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(b, opcodes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs_vec)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffers_vec)
    tflite.ModelAddSignatureDefs(b, signatures_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def _write_tensors(
    b: flatbuffers.Builder, defs: Sequence[TensorDef]
) -> tuple[list[int], list[int]]:
    # Buffer 0 is the empty sentinel that every activation tensor points at (schema: Buffer).
    tflite.BufferStart(b)
    buffers = [tflite.BufferEnd(b)]
    tensors = []
    shared: dict[object, int] = {}  # zero-point vectors and whole tables, written once
    for t in defs:
        buffer_index = 0
        if t.data is not None:
            data = _aligned_bytes(b, t.data)
            tflite.BufferStart(b)
            tflite.BufferAddData(b, data)
            buffer_index = len(buffers)
            buffers.append(tflite.BufferEnd(b))
        name = b.CreateString(t.name)
        shape = _int_vector(b, tflite.TensorStartShapeVector, t.shape)
        signature = None
        if t.shape_signature is not None:
            signature = _int_vector(b, tflite.TensorStartShapeSignatureVector, t.shape_signature)
        quant = None
        if t.quantization is not None:  # equal parameters (a state in and out, ...): one table
            if t.quantization not in shared:
                shared[t.quantization] = _write_quantization(b, t.quantization, shared)
            quant = shared[t.quantization]
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        if signature is not None:
            tflite.TensorAddShapeSignature(b, signature)
        tflite.TensorAddType(b, t.dtype)
        tflite.TensorAddBuffer(b, buffer_index)
        tflite.TensorAddName(b, name)
        tensors.append(tflite.TensorEnd(b))
    return buffers, tensors


def _write_quantization(b: flatbuffers.Builder, q: QuantDef, shared: dict[object, int]) -> int:
    # Per-channel zero points are int64 and must be as many as the scales; the all-zero
    # vectors of symmetric weights repeat, so each distinct vector is stored once and its
    # offset shared (a flatbuffer may point at one vector from many tables): 8 bytes per
    # output channel saved, which is 12% of a 64-wide int8 row.
    start = tflite.QuantizationParametersStartScaleVector
    start(b, len(q.scale))
    for v in reversed(q.scale):
        b.PrependFloat32(v)
    scale = b.EndVector()
    if q.zero_point not in shared:
        tflite.QuantizationParametersStartZeroPointVector(b, len(q.zero_point))
        for v in reversed(q.zero_point):
            b.PrependInt64(v)
        shared[q.zero_point] = b.EndVector()
    zero_point = shared[q.zero_point]
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, scale)
    tflite.QuantizationParametersAddZeroPoint(b, zero_point)
    tflite.QuantizationParametersAddQuantizedDimension(b, q.dimension)
    return tflite.QuantizationParametersEnd(b)


def _write_operator(
    b: flatbuffers.Builder, op: OperatorDef, opcode_index: int, shared: dict[Options, int]
) -> int:
    inputs = _int_vector(b, tflite.OperatorStartInputsVector, op.inputs)
    outputs = _int_vector(b, tflite.OperatorStartOutputsVector, op.outputs)
    options = None
    if op.options:  # a flatbuffer may point at one table from many (schema: Operator)
        if op.options not in shared:
            shared[op.options] = _write_options(b, op.options)
        options = shared[op.options]
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, opcode_index)
    tflite.OperatorAddInputs(b, inputs)
    tflite.OperatorAddOutputs(b, outputs)
    if op.options:
        tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options.kind))
        tflite.OperatorAddBuiltinOptions(b, options)
    return tflite.OperatorEnd(b)


def _write_options(b: flatbuffers.Builder, options: Options) -> int:
    # Generated names follow one pattern: <Table>Start, <Table>Add<Field>, <Table>End.
    getattr(tflite, f"{options.kind}Start")(b)
    for field, value in options.fields:
        getattr(tflite, f"{options.kind}Add{field}")(b, value)
    return getattr(tflite, f"{options.kind}End")(b)


def _write_opcode(b: flatbuffers.Builder, code: int, version: int) -> int:
    # deprecated_builtin_code is an int8 kept for old readers; codes above 127 store
    # PLACEHOLDER_FOR_GREATER_OP_CODES (127) there and the real value in builtin_code.
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
    tflite.OperatorCodeAddBuiltinCode(b, code)
    tflite.OperatorCodeAddVersion(b, version)
    return tflite.OperatorCodeEnd(b)


def _write_subgraph(
    b: flatbuffers.Builder, program: Program, tensors: list[int], operators: list[int]
) -> int:
    tensors_vec = _table_vector(b, tflite.SubGraphStartTensorsVector, tensors)
    inputs = _int_vector(b, tflite.SubGraphStartInputsVector, program.inputs)
    outputs = _int_vector(b, tflite.SubGraphStartOutputsVector, program.outputs)
    operators_vec = _table_vector(b, tflite.SubGraphStartOperatorsVector, operators)
    name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddInputs(b, inputs)
    tflite.SubGraphAddOutputs(b, outputs)
    tflite.SubGraphAddOperators(b, operators_vec)
    tflite.SubGraphAddName(b, name)
    return tflite.SubGraphEnd(b)


def _write_signature(b: flatbuffers.Builder, program: Program) -> int:
    # SignatureDef keys are the tensor names, so get_signature_runner() takes graph names.
    def tensor_maps(indices: Sequence[int]) -> list[int]:
        maps = []
        for i in indices:
            name = b.CreateString(program.tensors[i].name)
            tflite.TensorMapStart(b)
            tflite.TensorMapAddName(b, name)
            tflite.TensorMapAddTensorIndex(b, i)
            maps.append(tflite.TensorMapEnd(b))
        return maps

    inputs = _table_vector(b, tflite.SignatureDefStartInputsVector, tensor_maps(program.inputs))
    outputs = _table_vector(b, tflite.SignatureDefStartOutputsVector, tensor_maps(program.outputs))
    key = b.CreateString(SIGNATURE_KEY)
    tflite.SignatureDefStart(b)
    tflite.SignatureDefAddInputs(b, inputs)
    tflite.SignatureDefAddOutputs(b, outputs)
    tflite.SignatureDefAddSignatureKey(b, key)
    tflite.SignatureDefAddSubgraphIndex(b, 0)
    return tflite.SignatureDefEnd(b)


def _int_vector(
    b: flatbuffers.Builder, start: Callable[[flatbuffers.Builder, int], None], values: Sequence[int]
) -> int:
    start(b, len(values))
    for v in reversed(values):
        b.PrependInt32(v)
    return b.EndVector()


def _table_vector(
    b: flatbuffers.Builder, start: Callable[[flatbuffers.Builder, int], None], offsets: list[int]
) -> int:
    start(b, len(offsets))
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _aligned_bytes(b: flatbuffers.Builder, data: bytes) -> int:
    # Like Builder.CreateByteVector, but the payload starts on a BUFFER_ALIGNMENT boundary.
    b.StartVector(1, len(data), BUFFER_ALIGNMENT)
    b.head -= len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()
