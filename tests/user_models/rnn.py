"""Recurrent models over the rows of an image: `lstm` reaches TFLM as
UNIDIRECTIONAL_SEQUENCE_LSTM; `gru` lowers to a loop TFLM cannot run."""

import tf_keras as keras


def lstm(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Reshape((input_shape[0], -1))(inputs)
    x = keras.layers.LSTM(32, name="lstm")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def gru(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Reshape((input_shape[0], -1))(inputs)
    x = keras.layers.GRU(16, name="gru")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
