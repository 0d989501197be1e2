"""QAT for the layers TFMOT rejects or mishandles, with no manual change."""

import numpy as np
import pytest

from tflm_pipeline.quantize import int8, qat, rewrite
from tflm_pipeline.tflite import quant
from tflm_pipeline.tflm import interpreter
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.tf_env import load

pytestmark = pytest.mark.slow  # the rewrites are checked on trained models


@pytest.fixture(scope="module")
def awkward_model():
    """Conv1D, a relu6 keyword, Dense -> BatchNorm, a nested model, Rescaling at the
    input, an elu keyword and LayerNorm: the cases users report."""
    _, keras, _ = load()
    keras.backend.clear_session()  # default layer names ("dense", ...) start afresh
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((64, 3))
    x = L.Rescaling(0.5, offset=-1.0)(inp)
    x = L.Conv1D(8, 5, padding="same", activation="relu6")(x)
    x = L.BatchNormalization()(L.Conv1D(8, 3, padding="causal")(x))
    x = L.MaxPooling1D(2)(L.ReLU()(x))
    x = L.GlobalAveragePooling1D()(L.Conv1D(16, 3, activation="elu")(x))
    sub_in = keras.Input((16,))
    x = keras.Model(sub_in, L.Dense(12)(sub_in), name="head")(x)
    x = L.BatchNormalization()(x)
    x = L.Dense(8, activation="relu6")(x)
    x = L.LayerNormalization()(x)
    out = L.Dense(4, activation="softmax")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(256, 64, 3)).astype("float32")
    ys = rng.integers(0, 4, 256)
    xs += ys.reshape(-1, 1, 1).astype("float32")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(xs, ys, epochs=2, verbose=0)
    return model, xs, ys


def test_tfmot_rejects_it_as_it_is(awkward_model):
    _, _, tfmot = load()
    model, _, _ = awkward_model
    with pytest.raises(ValueError):
        tfmot.quantization.keras.quantize_model(model)


def test_rewrites_preserve_outputs_and_say_what_changed(awkward_model):
    model, x, _ = awkward_model
    prepared = rewrite.prepare(model, x[:32])  # raises if outputs change
    text = "\n".join(prepared.changes)
    for expected in ("moved Rescaling", "split activation='relu6'", "rewrote Conv1D",
                     "rewrote MaxPooling1D", "folded BatchNormalization 'batch_normalization' "
                     "into 'conv1d_1'", "folded BatchNormalization 'batch_normalization_1' "
                     "into 'dense'", "flattened nested model 'head'", "split activation='elu'"):
        assert expected in text, expected
    assert prepared.input_scale == pytest.approx(0.5) and prepared.input_offset == pytest.approx(-1)
    np.testing.assert_allclose(prepared.model.predict(prepared.inputs_for(x[:8]), verbose=0),
                               model.predict(x[:8], verbose=0), atol=1e-5)
    kinds = {type(layer).__name__ for layer in prepared.model.layers}
    assert not kinds & {"Conv1D", "MaxPooling1D", "Rescaling", "Functional"}


def test_qat_trains_and_int8_is_not_larger_than_ptq(awkward_model):
    _, keras, _ = load()
    model, x, y = awkward_model
    prepared = rewrite.prepare(model, x[:32])
    wrapped = qat.quantize(prepared.model)
    reasons = dict(wrapped.float_layers)
    assert set(reasons) == {"conv1d_2_elu", "layer_normalization"}
    xq = prepared.inputs_for(x)
    wrapped.model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy",
                          ["accuracy"])
    wrapped.model.fit(xq, y, epochs=1, verbose=0)
    ptq = int8.to_int8_tflite(prepared.model, xq[:64])
    qat_int8 = int8.to_int8_tflite(wrapped.model, xq[:64])
    assert len(qat_int8) <= len(ptq)
    info = read_model(qat_int8)
    # Dense layers trained with fake-quant weights keep one scale (TFMOT would have
    # dropped the weight quantizer of dense_1, followed by a separate ReLU6 layer)
    weights = {t.name: t for t in info.tensors}
    assert len(weights["dense_1/weights"].scales) == 1
    assert len(weights["dense/weights"].scales) == 1
    assert "CONV_2D" in info.op_names
    # the int8 model (LayerNorm and ELU quantized from calibration) computes what QAT
    # Keras computes, to within quantization error
    out = interpreter.run(qat_int8, quant.quantize(xq, info.inputs[0]))[0]
    probs = quant.dequantize(out, info.outputs[0])
    keras_probs = wrapped.model.predict(xq, verbose=0)
    assert np.abs(probs - keras_probs).mean() < 0.05


def test_tensor_names_are_short_and_by_layer(awkward_model):
    model, x, _ = awkward_model
    prepared = rewrite.prepare(model, x[:32])
    info = read_model(int8.to_int8_tflite(prepared.model, prepared.inputs_for(x[:32])))
    names = [t.name for t in info.tensors]
    assert "input" in names and "output" in names
    assert "dense_2/weights" in names and "dense_2/bias" in names
    assert "conv1d_1/conv_2d" in names
    assert max(len(n) for n in names) < 48
