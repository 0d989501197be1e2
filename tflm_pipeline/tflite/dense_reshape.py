"""Dense (FULLY_CONNECTED) layers that keep their input's dimensions (output
``[1, rows, units]``, e.g. a Dense on a sequence) rewritten as a 2-D FULLY_CONNECTED
(``[rows, units]``) followed by a RESHAPE back to the original shape: the same
arithmetic, for kernels that read only a 2-D output (esp-tflite-micro < 1.3.2 with
ESP-NN).  No TensorFlow.
"""

from __future__ import annotations

import numpy as np

from .model_info import ModelInfo, read_model
from .tensor_names import repack


def high_rank_dense_layers(info: ModelInfo) -> list[int]:
    """Indices of FULLY_CONNECTED ops whose output has more than two dimensions."""
    return [op.index for op in info.operators if op.name == "FULLY_CONNECTED"
            and len(info.tensors[op.outputs[0]].shape) > 2]


def dense_outputs_2d(flatbuffer: bytes) -> bytes:
    """``flatbuffer`` with every FULLY_CONNECTED of output rank > 2 computing a
    ``[rows, units]`` tensor that a new RESHAPE turns into the original output."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    info = read_model(flatbuffer)
    ops = set(high_rank_dense_layers(info))
    if not ops:
        return flatbuffer
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    graph = model.subgraphs[0]
    reshape = _opcode(model, schema, schema.BuiltinOperator.RESHAPE)
    rewritten = []
    for k, op in enumerate(graph.operators):
        rewritten.append(op)
        if k not in ops:
            continue
        out = graph.tensors[op.outputs[0]]
        shape = [int(d) for d in out.shape]
        flat = schema.TensorT()
        flat.shape = [int(np.prod(shape[:-1])), shape[-1]]
        flat.type, flat.quantization = out.type, out.quantization
        flat.name = (out.name or b"") + b"/2d"
        flat.buffer = _buffer(model, schema, None)
        graph.tensors.append(flat)
        target = schema.TensorT()
        target.shape, target.type, target.name = [len(shape)], schema.TensorType.INT32, \
            (out.name or b"") + b"/shape"
        target.buffer = _buffer(model, schema, np.asarray(shape, np.int32))
        graph.tensors.append(target)
        flat_index, shape_index = len(graph.tensors) - 2, len(graph.tensors) - 1
        if op.builtinOptions is not None:
            op.builtinOptions.keepNumDims = False
        step = schema.OperatorT()
        step.opcodeIndex = reshape
        step.inputs, step.outputs = [flat_index, shape_index], [op.outputs[0]]
        step.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
        step.builtinOptions = schema.ReshapeOptionsT()
        step.builtinOptions.newShape = shape
        op.outputs = [flat_index]
        rewritten.append(step)
    graph.operators = rewritten
    out = repack(model, len(flatbuffer))
    if high_rank_dense_layers(read_model(out)):
        raise AssertionError("a Dense layer kept an output of rank > 2")
    return out


def _opcode(model, schema, builtin: int) -> int:
    """Index of ``builtin`` in the model's operator codes, added when missing."""
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _buffer(model, schema, data) -> int:
    buffer = schema.BufferT()
    if data is not None:
        buffer.data = np.frombuffer(data.tobytes(), np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1
