"""1-D CNN for time series and sensor windows (accelerometer gestures, vibration, ECG):
a window of T samples x C channels -> classes.

Three Conv1D + ReLU layers (16, 32, 64 filters) with max pooling, global average
pooling, dense + softmax.  Conv1D and MaxPooling1D are not quantizable by TFMOT as they
are; ``tflmp`` rewrites them to their 2-D equivalents before QAT.

Reference shape 128x3 (1.28 s of a 3-axis accelerometer at 100 Hz), 6 classes:
13,542 parameters, 522,624 MACs (int8: 21,632 bytes of flatbuffer).
"""

from __future__ import annotations


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
