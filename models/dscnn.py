"""DS-CNN for keyword spotting (MLPerf Tiny KWS reference): 49 MFCC frames x 10
coefficients of a 1 s clip -> 12 classes (10 words, silence, unknown).

Conv 64@10x4 stride 2 + BN + ReLU, four depthwise-separable blocks (depthwise 3x3 + BN +
ReLU, pointwise 64@1x1 + BN + ReLU), dropout, average pool over the whole map, dense +
softmax.

Reference shape 49x10x1, 12 classes: 24,332 parameters, 2,656,768 MACs (int8: 41,936
bytes of flatbuffer).
"""

from __future__ import annotations

from . import BN_MOMENTUM


# What `tflmp tune` searches (tflm_pipeline.tuning.space reads it).
SEARCH_SPACE = {"filters": {"int": [16, 96], "step": 16}, "blocks": {"int": [1, 4]},
                "dropout": {"float": [0.0, 0.5], "step": 0.1}}


def build(input_shape=(49, 10, 1), num_classes: int = 12, *, filters: int = 64,
          blocks: int = 4, dropout: float = 0.4):
    from ..tf_env import load

    _, keras, _ = load()
    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = L.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", use_bias=False,
                 name="conv")(inputs)
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name="conv_bn")(x)
    x = L.ReLU(name="conv_relu")(x)
    for b in range(1, blocks + 1):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{b}")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{b}_bn")(x)
        x = L.ReLU(name=f"dw{b}_relu")(x)
        x = L.Conv2D(filters, 1, use_bias=False, name=f"pw{b}")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"pw{b}_bn")(x)
        x = L.ReLU(name=f"pw{b}_relu")(x)
    x = L.Dropout(dropout, name="dropout")(x)
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(num_classes, name="logits")(x)
    outputs = L.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="dscnn")
