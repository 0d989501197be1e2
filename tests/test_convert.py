"""Keras -> full-int8 TFLite with the real converter, PTQ and QAT."""

import numpy as np

from tflm_pipeline.tflite import quant
from tflm_pipeline.tflm import interpreter
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.tasks import CLASSIFICATION
from tflm_pipeline.tflm.harness import evaluate


def test_ptq_and_qat_models_are_full_int8_batch_1(trained_lenet):
    for key in ("ptq_tflite", "qat_tflite"):
        info = read_model(trained_lenet[key])
        assert info.is_full_int8
        assert info.inputs[0].shape == (1, 8, 8, 1)
        assert info.outputs[0].shape == (1, 10)
        assert {"CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(info.op_names)
        # every weight tensor is int8 (biases int32): nothing left in float
        assert not [t for t in info.tensors if t.is_constant and t.type == "FLOAT32"]


def test_int8_in_tflm_tracks_keras(trained_lenet, digits):
    x, y = digits.inputs("test")
    keras_pred = trained_lenet["qat"].predict(x, verbose=0).argmax(1)
    r = evaluate(trained_lenet["qat_tflite"], CLASSIFICATION, {"test": (x, y)}, 10)
    info = read_model(trained_lenet["qat_tflite"])
    out = interpreter.run(trained_lenet["qat_tflite"], quant.quantize(x, info.inputs[0]))[0]
    agreement = (out.argmax(1) == keras_pred).mean()
    assert agreement > 0.95
    assert abs(r["test"]["accuracy"] - (keras_pred == y).mean()) < 0.05
    assert np.array(r["test"]["confusion"]).sum() == len(y)
