"""ResNet-8 for small-image classification (MLPerf Tiny image-classification reference,
CIFAR-10): 32x32 RGB image -> 10 classes.

Conv 16@3x3 + BN + ReLU, three residual stacks (16, 32, 64 filters; the last two
stride 2 with a 1x1 projection shortcut), average pool, dense + softmax.

Reference shape 32x32x3, 10 classes: 78,666 parameters, 12,501,632 MACs (int8: 91,840
bytes of flatbuffer).
"""

from __future__ import annotations

from . import BN_MOMENTUM


# What `tflmp tune` searches: the first stage's filters (each stage doubles them).
SEARCH_SPACE = {"base_filters": {"int": [4, 24], "step": 4}}


def hyper_from_search(params: dict) -> dict:
    """The build arguments for one point of SEARCH_SPACE."""
    f = params["base_filters"]
    return {"filters": (f, 2 * f, 4 * f)}


def build(input_shape=(32, 32, 3), num_classes: int = 10, *, filters=(16, 32, 64)):
    from ..tf_env import load

    _, keras, _ = load()
    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = L.Conv2D(filters[0], 3, padding="same", name="conv")(inputs)
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name="conv_bn")(x)
    x = L.ReLU(name="conv_relu")(x)
    for s, f in enumerate(filters, start=1):
        stride = 1 if s == 1 else 2
        y = L.Conv2D(f, 3, strides=stride, padding="same", name=f"s{s}_conv1")(x)
        y = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"s{s}_bn1")(y)
        y = L.ReLU(name=f"s{s}_relu1")(y)
        y = L.Conv2D(f, 3, padding="same", name=f"s{s}_conv2")(y)
        y = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"s{s}_bn2")(y)
        if stride != 1 or x.shape[-1] != f:
            x = L.Conv2D(f, 1, strides=stride, padding="same", name=f"s{s}_shortcut")(x)
        x = L.Add(name=f"s{s}_add")([x, y])
        x = L.ReLU(name=f"s{s}_relu2")(x)
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(num_classes, name="logits")(x)
    outputs = L.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="resnet8")
