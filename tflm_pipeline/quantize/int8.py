"""Keras model (float or QAT) -> full-int8 TFLite bytes for TFLM.

Full int8 means int8 input and output tensors and only int8 builtin kernels, with a
fixed batch of 1 so the arena planner sees static shapes.  Also the per-layer
quantization error of a float model (TFLite's quantization debugger), which shows which
layer quantization itself hurts.
"""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np

from ..config import DEFAULT_CALIBRATION_SAMPLES
from ..errors import TflmpError, first_line
from ..tf_env import load, quiet_native_stderr
from ..tflite.model_info import per_channel_dense_layers, read_model
from ..tflite.tensor_names import compact_tensor_names, layer_of


def representative_samples(x: np.ndarray, count: int = DEFAULT_CALIBRATION_SAMPLES,
                           seed: int = 0) -> np.ndarray:
    """A seeded random subset of preprocessed training inputs for calibration."""
    if len(x) == 0:
        raise TflmpError("no training samples for int8 calibration")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=min(count, len(x)), replace=False)
    return np.asarray(x[np.sort(idx)], np.float32)


def to_int8_tflite(model, calibration: np.ndarray, *, per_channel_dense: bool = True) -> bytes:
    """Convert ``model`` to a full-int8 flatbuffer calibrated on ``calibration``.

    Works for float models (post-training quantization) and for TFMOT QAT models
    (the fake-quant ranges learned in training are kept; calibration fills any gaps).
    ``per_channel_dense=False`` gives FULLY_CONNECTED weights one scale, for TFLM
    releases older than September 2024 that silently compute per-channel Dense layers
    with the first channel's scale.
    """
    tf, _, _ = load()
    if len(model.inputs) != 1:
        raise TflmpError(f"model '{model.name}' has {len(model.inputs)} inputs; tflmp converts "
                         "single-input models")
    converter = _converter(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = (
        not per_channel_dense)

    def dataset():
        for sample in calibration:
            yield [sample[None].astype(np.float32)]

    converter.representative_dataset = dataset
    try:
        with quiet_native_stderr():
            flatbuffer = converter.convert()
    except Exception as e:  # the converter raises ConverterError and friends
        raise TflmpError(f"TFLite conversion of '{model.name}' to int8 failed: "
                         f"{first_line(e)}") from None
    flatbuffer = compact_tensor_names(bytes(flatbuffer))
    info = read_model(flatbuffer)
    if not info.is_full_int8:
        raise TflmpError(f"conversion of '{model.name}' did not give int8 inputs and outputs")
    if not per_channel_dense and per_channel_dense_layers(info):
        raise TflmpError(f"conversion of '{model.name}' kept per-channel Dense weights")
    return bytes(flatbuffer)


def quantization_error(keras_model, calibration: np.ndarray, samples: np.ndarray) -> list[dict]:
    """Per layer: RMSE between float and int8 activations over the quantization step
    (TFLite's quantization debugger, on the desktop: this measures quantization, not
    the device)."""
    tf, _, _ = load()
    converter = _converter(keras_model)
    converter.representative_dataset = lambda: ([c[None]] for c in calibration)
    with warnings.catch_warnings(), quiet_native_stderr():
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([s[None]] for s in samples))
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for r in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(r["scale"] or 0)
        name = r["tensor_name"]
        if name.startswith("StatefulPartitionedCall"):  # the traced function's output
            name = keras_model.layers[-1].name
        if scale > 0:
            rows.append({"layer": layer_of(name) or name,
                         "op": r["op_name"],
                         "rmse_over_scale": float(np.sqrt(float(r["mean_squared_error"])) / scale)})
    return rows


def _converter(model):
    """A TFLiteConverter of ``model`` traced at batch 1, with the default optimizations."""
    tf, _, _ = load()
    spec = tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32, name="input")
    if None in spec.shape.as_list():
        raise TflmpError(f"model input shape {model.inputs[0].shape} has unknown dimensions "
                         "besides the batch; MCU models need a fixed input shape")
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                                model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter
