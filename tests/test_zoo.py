"""Every zoo model goes the whole way: float training -> QAT -> full int8 -> TFLM; and
each model file's stated parameters and MACs are what the model has."""

import re

import numpy as np
import pytest

from tflm_pipeline.quantize import int8, qat, rewrite
from tflm_pipeline.tflite import layers, quant
from tflm_pipeline.tflm import interpreter
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.models import MODELS, _module, build_model, task_of
from tflm_pipeline.tf_env import load

pytestmark = pytest.mark.slow  # every test here trains a zoo model

# Small input shapes keep the test fast; the reference shapes are checked below.
SMALL = {"lenet": ((28, 28, 1), 10), "dscnn": ((49, 10, 1), 12),
         "mobilenet_v1": ((32, 32, 3), 2), "resnet8": ((32, 32, 3), 10),
         "autoencoder": ((640,), 0), "cnn1d": ((128, 3), 6), "mlp": ((64,), 10)}
REFERENCE = {"lenet": ((28, 28, 1), 10), "dscnn": ((49, 10, 1), 12),
             "mobilenet_v1": ((96, 96, 3), 2), "resnet8": ((32, 32, 3), 10),
             "autoencoder": ((640,), 0), "cnn1d": ((128, 3), 6), "mlp": ((64,), 10)}


def test_every_model_is_tested():
    assert set(SMALL) == set(MODELS) == set(REFERENCE)


def _data(shape, classes, n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, max(classes, 1), n)
    x = rng.normal(0, 1, (n, *shape)).astype(np.float32)
    if classes:  # make the classes learnable: shift the mean by the label
        x += (y.reshape(-1, *[1] * len(shape)) * 0.5).astype(np.float32)
    return x, y


@pytest.mark.parametrize("name", sorted(SMALL))
def test_float_qat_int8_tflm(name):
    _, keras, _ = load()
    keras.utils.set_random_seed(0)
    shape, classes = SMALL[name]
    x, y = _data(shape, classes)
    autoencoder = task_of(name) == "autoencoder"
    target = x.reshape(len(x), -1) if autoencoder else y
    loss = "mse" if autoencoder else "sparse_categorical_crossentropy"
    model = build_model(name, shape, classes)
    model.compile("adam", loss)
    model.fit(x, target, epochs=1, batch_size=32, verbose=0)
    prepared = rewrite.prepare(model, x[:8])
    wrapped = qat.quantize(prepared.model)
    wrapped.model.compile(keras.optimizers.Adam(1e-4), loss)
    wrapped.model.fit(x, target, epochs=1, batch_size=32, verbose=0)
    keras_out = wrapped.model.predict(x[:16], verbose=0).reshape(16, -1)
    for keras_model in (prepared.model, wrapped.model):
        flatbuffer = int8.to_int8_tflite(keras_model, x[:32])
        info = read_model(flatbuffer)
        assert info.is_full_int8 and info.inputs[0].shape[1:] == shape
        out = interpreter.run(flatbuffer, quant.quantize(x[:16], info.inputs[0]), workers=1)[0]
        assert out.shape[0] == 16 and np.isfinite(quant.dequantize(out, info.outputs[0])).all()
    # the QAT int8 model in TFLM computes what the QAT Keras model computes
    tflm = quant.dequantize(out, info.outputs[0]).reshape(16, -1)
    scale = info.outputs[0].scales[0]
    assert np.mean(np.abs(tflm - keras_out)) < 4 * scale + 0.02 * np.abs(keras_out).mean()


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_docstring_states_the_real_params_and_macs(name):
    doc = _module(name).__doc__
    m = re.search(r"([\d,]+) parameters, ([\d,]+) MACs", doc.replace("\n", " "))
    assert m, f"{name}'s docstring must state parameters and MACs"
    params, macs = (int(v.replace(",", "")) for v in m.groups())
    shape, classes = REFERENCE[name]
    model = build_model(name, shape, classes)
    assert model.count_params() == params
    calib = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    assert layers.totals(read_model(int8.to_int8_tflite(model, calib)))["macs"] == macs
