"""MobileNet v1 for visual wake words (MLPerf Tiny VWW reference): 96x96 RGB image ->
person / no person.

Conv 3x3 stride 2, then 13 depthwise-separable blocks (depthwise 3x3 + BN + ReLU6,
pointwise 1x1 + BN + ReLU6) with filters 64..1024 scaled by ``alpha``, global average
pool, dense + softmax.

Reference shape 96x96x3, alpha 0.25, 2 classes: 219,058 parameters, 7,489,664 MACs
(int8: 290,760 bytes of flatbuffer).
"""

from __future__ import annotations

from . import BN_MOMENTUM

_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


# What `tflmp tune` searches (tflm_pipeline.tuning.space reads it).
SEARCH_SPACE = {"alpha": {"choice": [0.1, 0.25, 0.35, 0.5]}}


def build(input_shape=(96, 96, 3), num_classes: int = 2, *, alpha: float = 0.25):
    from ..tf_env import load

    _, keras, _ = load()
    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = L.Conv2D(int(32 * alpha), 3, strides=2, padding="same", use_bias=False,
                 name="conv")(inputs)
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name="conv_bn")(x)
    x = L.ReLU(6.0, name="conv_relu")(x)
    for b, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                              name=f"dw{b}")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{b}_bn")(x)
        x = L.ReLU(6.0, name=f"dw{b}_relu")(x)
        x = L.Conv2D(int(filters * alpha), 1, use_bias=False, name=f"pw{b}")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"pw{b}_bn")(x)
        x = L.ReLU(6.0, name=f"pw{b}_relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dense(num_classes, name="logits")(x)
    outputs = L.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v1")
