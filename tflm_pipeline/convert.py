"""Convert stage: a Keras model (float or QAT) -> full-int8 TFLite bytes for TFLM.

Full int8 means int8 input and output tensors and only int8 builtin kernels, with a
fixed batch of 1 so the arena planner sees static shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TflmpError
from .model_info import read_model, read_model_bytes
from .tf_env import load, quiet_native_stderr

DEFAULT_CALIBRATION_SAMPLES = 500


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
    spec = tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32, name="input")
    if None in spec.shape.as_list():
        raise TflmpError(f"model input shape {model.inputs[0].shape} has unknown dimensions "
                         "besides the batch; MCU models need a fixed input shape")
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
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
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TflmpError(f"TFLite conversion of '{model.name}' to int8 failed: {first}") from None
    flatbuffer = compact_tensor_names(bytes(flatbuffer))
    info = read_model(flatbuffer)
    if not info.is_full_int8:
        raise TflmpError(f"conversion of '{model.name}' did not give int8 inputs and outputs")
    if not per_channel_dense and per_channel_dense_layers(info):
        raise TflmpError(f"conversion of '{model.name}' kept per-channel Dense weights")
    return bytes(flatbuffer)


def compact_tensor_names(flatbuffer: bytes) -> bytes:
    """Replace the converter's fused tensor names with short ones, then re-align.

    The converter names tensors by every op fused into them
    ("model/quant_conv1/Relu;model/quant_conv1/BiasAdd;.../FakeQuantWithMinMaxVars"),
    QAT models doubly so; in a small model that is a fifth of the flash.  Each tensor is
    renamed after the Keras layer of the op producing or using it and its role
    ("conv1/conv_2d", "conv1/weights", "conv1/bias"; "input", "output"); the flatbuffer
    is re-serialized and its buffers re-aligned with the tool tflite-micro ships, so
    every weight keeps the alignment TFLM expects.
    """
    import tempfile

    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    info = read_model(flatbuffer)
    names = {}
    for op in info.operators:
        out = op.outputs[0] if op.outputs and op.outputs[0] >= 0 else None
        layer = layer_of(info.tensors[out].name) if out is not None else None
        if layer is None:
            continue
        for t in op.outputs:
            names.setdefault(t, f"{layer}/{op.name.lower()}")
        for pos, t in enumerate(op.inputs):
            if t >= 0 and info.tensors[t].is_constant:
                names.setdefault(t, f"{layer}/" + {1: "weights", 2: "bias"}.get(pos, f"const{pos}"))
    for group, word in ((info.input_indices, "input"), (info.output_indices, "output")):
        for i, t in enumerate(group):
            names[t] = word if len(group) == 1 else f"{word}_{i}"
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        if index in names:
            tensor.name = names[index].encode()
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory(prefix="tflmp-") as tmp:
        packed, aligned = Path(tmp) / "packed.tflite", Path(tmp) / "aligned.tflite"
        packed.write_bytes(bytes(builder.Output()))
        tflite_flatbuffer_align_wrapper.align_tflite_model(str(packed), str(aligned))
        return aligned.read_bytes()


def layer_of(tensor_name: str) -> str | None:
    """The Keras layer an op's output tensor comes from: the last fused name wins
    ("m/conv_relu/Relu;m/conv/Conv2D" -> "conv"); tflmp's own names are "layer/op";
    TFMOT's "quant_" prefix is dropped."""
    parts = tensor_name.split(";")[-1].split("/")
    if len(parts) < 2:
        return None
    layer = parts[1] if len(parts) >= 3 else parts[0]
    return layer[len("quant_"):] if layer.startswith("quant_") else layer


def per_channel_dense_layers(info) -> list[int]:
    """Indices of FULLY_CONNECTED ops whose weights carry more than one scale."""
    return [op.index for op in info.operators if op.name == "FULLY_CONNECTED"
            and len(op.inputs) > 1 and len(info.tensors[op.inputs[1]].scales) > 1]


def convert_model(source: str | Path, out_dir: str | Path | None = None, *,
                  name: str | None = None, c_array: bool = True, dataset: str | None = None,
                  data_dir: str | None = None, tree: str | None = None,
                  trust_model: bool = False) -> dict:
    """``tflmp convert``: a ``.tflite``, a run folder, or a float Keras ``.h5`` -> files.

    A Keras model is first converted to full int8, calibrated on ``dataset`` (or the
    dataset of the run folder it sits in); the ``.tflite`` is written to ``out_dir``.
    With ``c_array`` the model is written as C sources: ``<name>_model_data.h/.cc``,
    ``<name>_model_settings.h`` and ``<name>_op_resolver.h`` (for the TFLM ``tree``).
    Returns the C identifier used, the model summary and the files written.
    ``trust_model`` allows Keras files whose Lambda layers run stored code.
    """
    from . import runs
    from .artifacts import write_bytes
    from .codegen import write_model_sources
    from .codegen.c_array import c_identifier
    from .codegen.op_resolver import DEFAULT_TREE

    src = runs.resolve(source)
    if name is None:
        name = src.config.model if src.config else src.model_path.stem
    ident = c_identifier(name)
    out_dir = Path(out_dir) if out_dir is not None else Path("build") / ident
    files = []
    if src.model_path.suffix in (".h5", ".hdf5", ".keras"):
        flatbuffer = _convert_keras_file(src, dataset, data_dir, trust_model)
        files.append(write_bytes(out_dir / f"{ident}_int8.tflite", flatbuffer))
    else:
        flatbuffer = read_model_bytes(src.model_path)
        if not c_array:
            raise TflmpError(f"{src.model_path.name} is already a .tflite model; add --c-array "
                             "to emit it as C source")
    info = read_model(flatbuffer)
    if c_array:
        files += write_model_sources(flatbuffer, info, name, out_dir,
                                     preprocessing=src.preprocessing,
                                     tree=tree or DEFAULT_TREE, source=src.model_path.name)
    return {"name": ident, "model": info.to_dict(), "files": [str(f) for f in files]}


def _convert_keras_file(src, dataset, data_dir, trust: bool) -> bytes:
    from .data import load_dataset
    from .qat import load_float

    if dataset is not None:
        ds = load_dataset(dataset, data_dir)
        if src.preprocessing is not None:
            ds.preprocessing = src.preprocessing
    elif src.config is not None:
        ds = src.dataset()
    else:
        raise TflmpError(f"converting Keras model {src.model_path.name} needs calibration "
                         "data: pass --dataset (and --data-dir)")
    x, _ = ds.inputs("train")
    seed = src.config.seed if src.config else 0
    model = load_float(src.model_path, trust=trust)
    return to_int8_tflite(model, representative_samples(x, seed=seed))
