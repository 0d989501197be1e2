"""A user's own CNN with BatchNorm (the kind `tflmp train --model cnn_bn.py` takes):
build(input_shape, num_classes, **hyper) returns a tf_keras model."""

import tf_keras as keras


def build(input_shape, num_classes, *, filters=16):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax",
                                                  name="head")(x))
