"""Keras model (float or QAT) -> full-int8 TFLite bytes for TFLM.

Full int8 means int8 input and output tensors and only int8 builtin kernels, with a
fixed batch of 1 so the arena planner sees static shapes.  Also the per-layer
quantization error of a float model (TFLite's quantization debugger), which shows which
layer quantization itself hurts.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

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


# Recurrent layers the TFLite converter lowers to a WHILE loop over TensorLists: it
# crashes on them (GRU, SimpleRNN: a segfault) or emits ops TFLM lacks.  LSTM converts to
# UNIDIRECTIONAL_SEQUENCE_LSTM; an unrolled GRU/SimpleRNN to plain ops.
_LOOPING = {"GRU": "GRU(..., unroll=True) or an LSTM",
            "SimpleRNN": "SimpleRNN(..., unroll=True) or an LSTM",
            "RNN": "LSTM, or the RNN with unroll=True",
            "ConvLSTM1D": "Conv1D layers with an LSTM", "ConvLSTM2D": "Conv2D layers with an LSTM",
            "ConvLSTM3D": "Conv3D layers with an LSTM"}


def check_convertible(model) -> None:
    """A one-line error, before any conversion or training, for layers that cannot reach
    TFLM: recurrent layers that lower to a WHILE loop (naming the layer, the reason and
    what converts instead)."""
    for layer in _all_layers(model):
        kind = type(layer).__name__
        inner = layer.layer if kind == "Bidirectional" else layer
        inner_kind = type(inner).__name__
        if inner_kind in _LOOPING and not inner.get_config().get("unroll", False):
            raise TflmpError(
                f"layer '{layer.name}' ({kind}) converts to a WHILE loop over TensorLists, "
                f"which the TFLite converter crashes on and TFLM does not run; use "
                f"{_LOOPING[inner_kind]}")


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers") and layer is not model:
            yield from _all_layers(layer)


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
    check_convertible(model)
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


@dataclass(frozen=True)
class ConversionJob:
    """One Keras file to convert to int8 in :func:`convert_contained`: as it is, prepared
    for QAT (``prepare``), or its QAT twin with ``qat_weights``."""

    model_file: Path
    qat_weights: Path | None = None
    prepare: bool = False
    trust: bool = False
    per_channel_dense: bool = True


def convert_contained(jobs: list[ConversionJob], calibration: np.ndarray) -> list[bytes]:
    """:func:`to_int8_tflite` of each job, run in one child process: the converter can
    crash on models tflmp did not build, and then only the child dies."""
    with tempfile.TemporaryDirectory(prefix="tflmp-convert-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "calibration.npy", np.asarray(calibration, np.float32))
        spec = [{"model": str(j.model_file),
                 "qat_weights": str(j.qat_weights) if j.qat_weights else None,
                 "prepare": j.prepare, "trust": j.trust,
                 "per_channel_dense": j.per_channel_dense,
                 "calibration": str(tmp / "calibration.npy"), "out": str(tmp / f"{k}.tflite")}
                for k, j in enumerate(jobs)]
        (tmp / "jobs.json").write_text(json.dumps(spec))
        proc = subprocess.run([sys.executable, "-m", "tflm_pipeline.quantize._convert_child",
                               str(tmp / "jobs.json")], capture_output=True, text=True)
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        name = Path(jobs[0].model_file).name
        if proc.returncode == 2 and lines:
            raise TflmpError(lines[-1])
        if proc.returncode < 0:
            raise TflmpError(f"the TFLite converter crashed (signal {-proc.returncode}) on "
                             f"{name}; the crash was contained: the model uses something the "
                             "converter cannot lower (check its layers)")
        outs = [Path(s["out"]) for s in spec]
        if proc.returncode != 0 or not all(o.is_file() for o in outs):
            raise TflmpError(f"the int8 conversion of {name} failed: "
                             f"{lines[-1] if lines else f'exit code {proc.returncode}'}")
        return [o.read_bytes() for o in outs]


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
