"""Tensor names of a flatbuffer: short ones named after the Keras layers, and the layer
behind an op.  Uses the flatbuffer schema and alignment tool ``tflite-micro`` ships;
no TensorFlow."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .model_info import ModelInfo, read_model


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
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

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
    return repack(model, len(flatbuffer))


def repack(model, size_hint: int = 0) -> bytes:
    """Serialize a ``schema.ModelT`` and re-align its buffers with the tool tflite-micro
    ships, so every weight keeps the alignment TFLM expects."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    builder = flatbuffers.Builder(size_hint + 1024)
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


def keras_layer_of(info: ModelInfo, op_index: int) -> str | None:
    """The Keras layer behind an op, from its output tensor's name."""
    op = info.operators[op_index]
    if not op.outputs or op.outputs[0] < 0:
        return None
    return layer_of(info.tensors[op.outputs[0]].name)
