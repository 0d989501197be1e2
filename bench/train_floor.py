"""The floor under any end-to-end LeNet/MNIST run on this machine: nothing but the
TensorFlow training compute that `tflmp train` must do (6 float + 2 QAT epochs at its
batch size), with no callbacks, no validation, no conversion and no TFLM.

    python bench/train_floor.py --data-dir ../shared/datasets/mnist [--batch 128]

Prints one JSON line with the wall time from process start (TensorFlow's import
included, as in both other scripts).  Used by bench/e2e_mnist.py: if this floor alone
is more than half the plain script's time, no tool doing the same epochs can reach
ratio 0.5 here.
"""

import argparse
import json
import os
import time

T_START = time.monotonic()
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--qat-epochs", type=int, default=2)
    args = ap.parse_args()
    from pathlib import Path

    import tensorflow as tf
    import tf_keras as keras
    import tensorflow_model_optimization as tfmot

    from tflm_pipeline.data.builtin import read_idx
    from tflm_pipeline.models import build_model

    d = Path(args.data_dir)
    x = (read_idx(d / "train-images-idx3-ubyte.gz")[..., None] / 255.0).astype("float32")
    y = read_idx(d / "train-labels-idx1-ubyte.gz").astype("int64")
    x, y = x[:54_000], y[:54_000]  # as many as tflmp trains on: the 60k less 10 % validation
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0)
          .batch(args.batch).prefetch(tf.data.AUTOTUNE))
    keras.utils.set_random_seed(0)
    model = build_model("lenet", (28, 28, 1), 10)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", ["accuracy"])
    t = time.monotonic()
    model.fit(ds, epochs=args.epochs, verbose=0)
    t_train = time.monotonic() - t
    t = time.monotonic()
    qat = tfmot.quantization.keras.quantize_model(model)
    qat.compile(keras.optimizers.Adam(2e-4), "sparse_categorical_crossentropy", ["accuracy"])
    qat.fit(ds, epochs=args.qat_epochs, verbose=0)
    t_qat = time.monotonic() - t
    print(json.dumps({"wall_s": round(time.monotonic() - T_START, 1), "batch": args.batch,
                      "train_s": round(t_train, 1), "qat_s": round(t_qat, 1)}))


if __name__ == "__main__":
    main()
