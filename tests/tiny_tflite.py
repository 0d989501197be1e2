"""Tiny full-int8 TFLite models built from the schema tflite-micro ships, without
TensorFlow: one FULLY_CONNECTED, CONV_2D or DEPTHWISE_CONV_2D layer with the shapes,
padding and weight quantization a test asks for.  They are valid models: TFLM runs them."""

from __future__ import annotations

import math

import numpy as np

from tflm_pipeline.tflite.tensor_names import repack
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s

_IN_SCALE, _OUT_SCALE = 0.05, 0.1


class _Graph:
    def __init__(self):
        self.tensors, self.buffers, self.codes = [], [s.BufferT()], []

    def tensor(self, shape, kind, scales, data=None, qdim=0, zero_point=0) -> int:
        t = s.TensorT()
        t.shape, t.type, t.name = list(shape), kind, f"t{len(self.tensors)}".encode()
        q = s.QuantizationParametersT()
        q.scale = [float(v) for v in scales]
        q.zeroPoint = [zero_point] * len(scales)
        q.quantizedDimension = qdim
        t.quantization = q
        buffer = s.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        self.buffers.append(buffer)
        t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def model(self, op_code, inputs, output, options_type, options) -> bytes:
        code = s.OperatorCodeT()
        code.builtinCode = op_code
        code.deprecatedBuiltinCode = min(op_code, 127)
        code.version = 1
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, list(inputs), [output]
        op.builtinOptionsType, op.builtinOptions = options_type, options
        graph = s.SubGraphT()
        graph.tensors, graph.operators = self.tensors, [op]
        graph.inputs, graph.outputs = [inputs[0]], [output]
        m = s.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [code], [graph], self.buffers
        m.description = b"tiny_tflite"
        return repack(m)


def _weights(rng, shape, out_axis, per_channel):
    """int8 weights whose channels differ in range (so one scale per layer loses some)."""
    channels = shape[out_axis]
    spread = np.geomspace(0.05, 1.0, channels).reshape(
        [channels if i == out_axis else 1 for i in range(len(shape))])
    real = rng.standard_normal(shape) * spread
    axes = tuple(i for i in range(len(shape)) if i != out_axis)
    per = np.abs(real).max(axis=axes) / 127.0
    scales = per if per_channel else np.array([per.max()])
    shaped = scales.reshape([-1 if i == out_axis else 1 for i in range(len(shape))]) \
        if per_channel else scales[0]
    return np.clip(np.round(real / shaped), -127, 127).astype(np.int8), scales


def fully_connected(input_shape=(1, 16), units=2, *, per_channel=True, weight_zero_point=0,
                    seed=0) -> bytes:
    """One Dense layer; an input of rank 3 ([1, rows, depth]) keeps its dims (rows > 1
    are the "batches" TFLM runs the kernel for)."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    depth = input_shape[-1]
    x = g.tensor(input_shape, s.TensorType.INT8, [_IN_SCALE])
    w, scales = _weights(rng, (units, depth), 0, per_channel)
    wt = g.tensor((units, depth), s.TensorType.INT8, scales, w, qdim=0,
                  zero_point=weight_zero_point)
    bias = rng.integers(-500, 500, units).astype(np.int32)
    bt = g.tensor((units,), s.TensorType.INT32, scales * _IN_SCALE, bias)
    y = g.tensor((*input_shape[:-1], units), s.TensorType.INT8, [_OUT_SCALE])
    options = s.FullyConnectedOptionsT()
    options.keepNumDims = len(input_shape) > 2
    return g.model(s.BuiltinOperator.FULLY_CONNECTED, [x, wt, bt], y,
                   s.BuiltinOptions.FullyConnectedOptions, options)


def conv(input_hw=(8, 8), channels=4, filters=4, kernel=(3, 3), stride=2, padding="SAME",
         *, depthwise=False, seed=0) -> bytes:
    """One CONV_2D (or DEPTHWISE_CONV_2D, multiplier filters / channels) layer."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    h, w = input_hw
    out_hw = ([math.ceil(d / stride) for d in input_hw] if padding == "SAME"
              else [(d - k) // stride + 1 for d, k in zip(input_hw, kernel)])
    x = g.tensor((1, h, w, channels), s.TensorType.INT8, [_IN_SCALE])
    shape = (1, *kernel, filters) if depthwise else (filters, *kernel, channels)
    axis = 3 if depthwise else 0
    wq, scales = _weights(rng, shape, axis, True)
    wt = g.tensor(shape, s.TensorType.INT8, scales, wq, qdim=axis)
    bt = g.tensor((filters,), s.TensorType.INT32, scales * _IN_SCALE,
                  np.zeros(filters, np.int32))
    y = g.tensor((1, *out_hw, filters), s.TensorType.INT8, [_OUT_SCALE])
    pad = s.Padding.SAME if padding == "SAME" else s.Padding.VALID
    if depthwise:
        o = s.DepthwiseConv2DOptionsT()
        o.depthMultiplier = filters // channels
        kind, code = s.BuiltinOptions.DepthwiseConv2DOptions, s.BuiltinOperator.DEPTHWISE_CONV_2D
    else:
        o = s.Conv2DOptionsT()
        kind, code = s.BuiltinOptions.Conv2DOptions, s.BuiltinOperator.CONV_2D
    o.padding, o.strideH, o.strideW = pad, stride, stride
    o.dilationHFactor = o.dilationWFactor = 1
    return g.model(code, [x, wt, bt], y, kind, o)
