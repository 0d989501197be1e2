"""The plain way, for comparison: the same steps as `tflmp train` on MNIST written the way
a tutorial would — batch 32, no input pipeline tuning, one process, per-sample TFLM loop.

    python bench/baseline_plain.py --data-dir ../shared/datasets/mnist

Prints one JSON line with wall times and accuracies.  Used by bench/e2e_mnist.py.
"""

import argparse
import gzip
import json
import os
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def read_idx(path):
    import numpy as np

    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--qat-epochs", type=int, default=2)
    args = ap.parse_args()
    t_start = time.monotonic()
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot
    from tflite_micro.python.tflite_micro import runtime

    d = args.data_dir
    x_train = read_idx(f"{d}/train-images-idx3-ubyte.gz")[..., None] / 255.0
    y_train = read_idx(f"{d}/train-labels-idx1-ubyte.gz")
    x_test = read_idx(f"{d}/t10k-images-idx3-ubyte.gz")[..., None] / 255.0
    y_test = read_idx(f"{d}/t10k-labels-idx1-ubyte.gz")
    x_train, x_test = x_train.astype("float32"), x_test.astype("float32")

    L = keras.layers
    model = keras.Sequential([
        L.Conv2D(6, 5, padding="same", activation="relu", input_shape=(28, 28, 1)),
        L.AveragePooling2D(), L.Conv2D(16, 5, activation="relu"), L.AveragePooling2D(),
        L.Conv2D(120, 5, activation="relu"), L.Flatten(), L.Dense(84, activation="relu"),
        L.Dense(10), L.Softmax()])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    t = time.monotonic()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.1,
              verbose=2)
    t_train = time.monotonic() - t

    t = time.monotonic()
    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy", ["accuracy"])
    qat.fit(x_train, y_train, batch_size=32, epochs=args.qat_epochs, validation_split=0.1,
            verbose=2)
    t_qat = time.monotonic() - t

    def to_int8(m):
        c = tf.lite.TFLiteConverter.from_keras_model(m)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = lambda: ([x_train[i:i + 1]] for i in range(500))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = c.inference_output_type = tf.int8
        return c.convert()

    t = time.monotonic()
    models = {"ptq": to_int8(model), "qat": to_int8(qat)}
    t_convert = time.monotonic() - t

    t = time.monotonic()
    acc = {}
    for name, flatbuffer in models.items():
        it = runtime.Interpreter.from_bytes(flatbuffer, arena_size=64 * 1024)
        q = it.get_input_details(0)["quantization_parameters"]
        scale, zero = q["scales"][0], q["zero_points"][0]
        correct = 0
        for i in range(len(x_test)):
            xq = np.clip(np.round(x_test[i:i + 1] / scale) + zero, -128, 127).astype(np.int8)
            it.set_input(xq, 0)
            it.invoke()
            correct += int(it.get_output(0).argmax() == y_test[i])
        acc[name] = correct / len(x_test)
    t_eval = time.monotonic() - t
    print(json.dumps({"wall_s": round(time.monotonic() - t_start, 1),
                      "train_s": round(t_train, 1), "qat_s": round(t_qat, 1),
                      "convert_s": round(t_convert, 1), "evaluate_s": round(t_eval, 1),
                      "ptq_int8_tflm": acc["ptq"], "qat_int8_tflm": acc["qat"]}))


if __name__ == "__main__":
    main()
