"""1-D CNN for time series and sensor windows (accelerometer gestures, vibration, ECG):
a window of T samples x C channels -> classes.

Three Conv1D + ReLU layers (16, 32, 64 filters) with max pooling, global average
pooling, dense + softmax.  Conv1D and MaxPooling1D are not quantizable by TFMOT as they
are; ``tflmp`` rewrites them to their 2-D equivalents before QAT.

Reference shape 128x3 (1.28 s of a 3-axis accelerometer at 100 Hz), 6 classes:
13,542 parameters, 522,624 MACs (int8: 21,632 bytes of flatbuffer).
"""

from __future__ import annotations

# What `tflmp tune` searches (tflm_pipeline.tuning.space reads it): depth and width of
# the filter pyramid (each layer doubles the previous one's filters) and the kernel size.
SEARCH_SPACE = {"depth": {"int": [1, 4]}, "base_filters": {"int": [4, 32], "step": 4},
                "kernel_size": {"choice": [3, 5, 7]}}


def hyper_from_search(params: dict) -> dict:
    """The build arguments for one point of SEARCH_SPACE."""
    return {"filters": tuple(params["base_filters"] * 2 ** i for i in range(params["depth"])),
            "kernel_size": params["kernel_size"]}


def build(input_shape=(128, 3), num_classes: int = 6, *, filters=(16, 32, 64),
          kernel_size: int = 5):
    from ..tf_env import load

    _, keras, _ = load()
    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    for i, f in enumerate(filters, start=1):
        x = L.Conv1D(f, kernel_size, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < len(filters):
            x = L.MaxPooling1D(2, name=f"pool{i}")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    x = L.Dense(num_classes, name="logits")(x)
    outputs = L.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="cnn1d")
