"""Multi-layer perceptron for tabular data and feature vectors (hand-crafted sensor
features, spectral bands, scikit-learn style data).

Dense 64 + ReLU, dense 32 + ReLU, dense + softmax.  Inputs of any shape are flattened.

Reference shape 64 features, 10 classes: 6,570 parameters, 6,464 MACs (int8: 9,552
bytes of flatbuffer).
"""

from __future__ import annotations

# What `tflmp tune` searches: the number of hidden layers and the first one's units (each
# further layer has half as many).
SEARCH_SPACE = {"depth": {"int": [1, 3]}, "units": {"int": [16, 256], "step": 16}}


def hyper_from_search(params: dict) -> dict:
    """The build arguments for one point of SEARCH_SPACE."""
    return {"units": tuple(max(4, params["units"] // 2 ** i) for i in range(params["depth"]))}


def build(input_shape=(64,), num_classes: int = 10, *, units=(64, 32)):
    from ..tf_env import load

    _, keras, _ = load()
    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs if len(input_shape) == 1 else L.Flatten(name="flatten")(inputs)
    for i, n in enumerate(units, start=1):
        x = L.Dense(n, activation="relu", name=f"dense{i}")(x)
    x = L.Dense(num_classes, name="logits")(x)
    outputs = L.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="mlp")
