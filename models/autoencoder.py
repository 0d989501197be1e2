"""Dense autoencoder for anomaly detection (MLPerf Tiny anomaly-detection reference,
ToyADMOS machine sounds): 5 frames x 128 log-mel bins flattened to 640 values ->
reconstruction; the anomaly score is the reconstruction error (mean squared).

Dense 128 + BN + ReLU x4, bottleneck dense 8 + BN + ReLU, dense 128 + BN + ReLU x4,
dense 640 (linear).

Reference shape 640: 269,992 parameters, 264,192 MACs (int8: 288,632 bytes of
flatbuffer).
"""

from __future__ import annotations

from . import BN_MOMENTUM

TASK = "autoencoder"


# What `tflmp tune` searches (tflm_pipeline.tuning.space reads it).
SEARCH_SPACE = {"units": {"int": [32, 256], "step": 32}, "bottleneck": {"int": [4, 16], "step": 4}}


def build(input_shape=(640,), num_classes: int = 0, *, units: int = 128,
          bottleneck: int = 8):
    """``num_classes`` is ignored: the output reproduces the input."""
    from ..tf_env import load

    _, keras, _ = load()
    L = keras.layers
    dim = int(input_shape[-1]) if len(input_shape) == 1 else None
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs if dim else L.Flatten(name="flatten")(inputs)
    dim = dim or int(x.shape[-1])
    for i, n in enumerate([units] * 4 + [bottleneck] + [units] * 4, start=1):
        x = L.Dense(n, name=f"dense{i}")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    outputs = L.Dense(dim, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")
