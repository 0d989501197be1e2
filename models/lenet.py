"""LeNet-5 (LeCun et al. 1998) for small grayscale images: handwritten digits, MNIST,
Fashion-MNIST.

Layers: conv 6@5x5 'same' + ReLU, 2x2 average pool, conv 16@5x5 + ReLU, 2x2 average
pool, conv 120@5x5 + ReLU, flatten, dense 84 + ReLU, dense ``num_classes`` + softmax.

Reference shape 28x28x1, 10 classes: 61,706 parameters, 416,520 MACs
(conv1 117,600; conv2 240,000; conv3 48,000; dense 10,080 + 840).

Inputs smaller than 28x28 (scikit-learn's 8x8 digits) cannot hold the 'valid' 5x5
convolutions after two poolings; there every convolution whose input is narrower than
it needs pads 'same' instead, keeping the layer sequence and widths.
"""

from __future__ import annotations

# What `tflmp tune` searches (tflm_pipeline.tuning.space reads it).
SEARCH_SPACE = {"width": {"float": [0.25, 1.5], "step": 0.25}}


def build(input_shape, num_classes: int, *, width: float = 1.0):
    """LeNet-5; ``width`` scales the number of filters and dense units."""
    from ..tf_env import load

    _, keras, _ = load()
    L = keras.layers
    c1, c2, c3, d1 = (max(1, round(n * width)) for n in (6, 16, 120, 84))
    size = min(input_shape[0], input_shape[1])

    def pad(min_size):
        return "valid" if size >= min_size else "same"

    inputs = keras.Input(shape=input_shape, name="input")
    x = L.Conv2D(c1, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = L.AveragePooling2D(2, name="pool1")(x)
    size //= 2
    p2 = pad(5)
    x = L.Conv2D(c2, 5, padding=p2, activation="relu", name="conv2")(x)
    size = size - 4 if p2 == "valid" else size
    x = L.AveragePooling2D(2, name="pool2")(x)
    size //= 2
    x = L.Conv2D(c3, 5, padding=pad(5), activation="relu", name="conv3")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(d1, activation="relu", name="fc1")(x)
    x = L.Dense(num_classes, name="logits")(x)
    outputs = L.Softmax(name="probs")(x)
    return keras.Model(inputs, outputs, name="lenet")
