"""Per-channel Dense (FULLY_CONNECTED) weights rewritten with one scale per layer, from
the int8 weights themselves, for TFLM releases that compute per-channel Dense layers
with the first channel's scale (before September 2024).

Each channel ``c`` holds ``w = q * s[c]``; the layer gets ``S = max_c |w| / 127`` and
``q' = round(q * s[c] / S)``; its int32 bias (scale ``s_in * s[c]``) becomes
``round(b * s[c] / S)`` at scale ``s_in * S``.  Channels with small weights lose
resolution: the caller measures what that costs (in TFLM).  No TensorFlow.
"""

from __future__ import annotations

import numpy as np

from ..errors import TflmpError
from .model_info import per_channel_dense_layers, read_model
from .tensor_names import repack


def per_tensor_dense(flatbuffer: bytes) -> bytes:
    """``flatbuffer`` with every per-channel FULLY_CONNECTED weight tensor per-tensor."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    info = read_model(flatbuffer)
    ops = per_channel_dense_layers(info)
    if not ops:
        return flatbuffer
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    graph = model.subgraphs[0]
    for k in ops:
        op = graph.operators[k]
        weights = graph.tensors[op.inputs[1]]
        w_info = info.tensors[op.inputs[1]]
        if w_info.type != "INT8" or any(w_info.zero_points):
            raise TflmpError(f"op {k} (FULLY_CONNECTED) has {w_info.type} weights with zero "
                             "points; only symmetric int8 weights can be re-quantized")
        w_buffer = model.buffers[weights.buffer]
        scales = np.asarray(w_info.scales, np.float64)
        q = np.frombuffer(bytes(w_buffer.data), np.int8).reshape(w_info.shape).astype(np.float64)
        axis = w_info.quantized_dimension
        shape = [1] * q.ndim
        shape[axis] = -1
        real = q * scales.reshape(shape)
        new_scale = float(np.abs(real).max()) / 127.0 or float(scales.max())
        new_q = np.clip(np.round(real / new_scale), -127, 127).astype(np.int8)
        w_buffer.data = np.frombuffer(new_q.tobytes(), np.uint8)
        weights.quantization.scale = [new_scale]
        weights.quantization.zeroPoint = [0]
        weights.quantization.quantizedDimension = 0
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = graph.tensors[op.inputs[2]]
            b_info = info.tensors[op.inputs[2]]
            b_buffer = model.buffers[bias.buffer]
            if b_info.type != "INT32" or b_buffer.data is None:
                raise TflmpError(f"op {k} (FULLY_CONNECTED) has a {b_info.type} bias; only "
                                 "int32 biases can be re-quantized")
            b = np.frombuffer(bytes(b_buffer.data), np.int32).astype(np.float64)
            input_scale = info.tensors[op.inputs[0]].scales[0]
            new_b = np.round(b * scales / new_scale)
            b_buffer.data = np.frombuffer(
                np.clip(new_b, -2**31, 2**31 - 1).astype(np.int32).tobytes(), np.uint8)
            bias.quantization.scale = [input_scale * new_scale]
            bias.quantization.zeroPoint = [0]
            bias.quantization.quantizedDimension = 0
    out = repack(model, len(flatbuffer))
    if per_channel_dense_layers(read_model(out)):
        raise TflmpError("re-quantizing the Dense weights left a per-channel layer")
    return out
