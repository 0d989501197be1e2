"""Writes Keras 3 model files for the tests, with Keras 3 itself (run in its own process:
Keras 3 and tf_keras never share one): python make_keras3.py OUT_DIR."""

import os
import sys

os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

out = sys.argv[1]
digits = load_digits()
x = (digits.images[..., None] / 16).astype("float32")
y = digits.target.astype("int32")
inputs = keras.Input((8, 8, 1))
h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
h = keras.layers.BatchNormalization()(h)
h = keras.layers.MaxPooling2D()(h)
h = keras.layers.Flatten()(h)
h = keras.layers.Dense(32, activation="relu")(h)
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x, y, epochs=3, verbose=0)
model.save(os.path.join(out, "keras3_cnn.keras"))
# RMSNormalization exists in Keras 3 only: no tf_keras twin
inputs = keras.Input((8, 8, 1))
h = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
h = keras.layers.RMSNormalization()(h)
model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x, y, epochs=3, verbose=0)
model.save(os.path.join(out, "keras3_rms.keras"))
