import pytest

from conftest import shared
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.tflite.model_info import read_model

# Ops the TFLM examples register for these models (their *_test.cc / main_functions.cc).
EXAMPLE_OPS = {
    "hello_world_int8.tflite": {"FULLY_CONNECTED"},
    "person_detect.tflite": {"AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE",
                             "SOFTMAX"},
    "micro_speech_quantized.tflite": {"RESHAPE", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                      "SOFTMAX"},
}


@pytest.mark.parametrize("name, ops", EXAMPLE_OPS.items())
def test_reads_third_party_models(name, ops):
    info = read_model(shared("models", name))
    assert set(info.op_names) == ops
    assert info.is_full_int8
    assert info.size == shared("models", name).stat().st_size


def test_quantization_and_shapes(hello_world_int8):
    info = read_model(hello_world_int8)
    (inp,), (out,) = info.inputs, info.outputs
    assert inp.shape == (1, 1) and inp.type == "INT8" and len(inp.scales) == 1
    assert out.shape == (1, 1)
    weights = [t for t in info.tensors if t.is_constant]
    assert weights and all(t.type in ("INT8", "INT32") for t in weights)


def test_float_model_is_not_full_int8():
    assert not read_model(shared("models", "hello_world_float.tflite")).is_full_int8


@pytest.mark.parametrize("cut", [0, 7, 16, 100, 1000, 2000])
def test_truncated_models_are_rejected(hello_world_int8, cut):
    with pytest.raises(TflmpError, match="corrupt or truncated|not a TFLite"):
        read_model(hello_world_int8[:cut])


def test_png_and_wrong_identifier(tmp_path, hello_world_int8):
    png = shared("models", "testdata", "mnist_lstm", "sample0.png")
    with pytest.raises(TflmpError, match="PNG image"):
        read_model(png)
    renamed = bytearray(hello_world_int8)
    renamed[4:8] = b"XXXX"
    with pytest.raises(TflmpError, match="expected 'TFL3'"):
        read_model(bytes(renamed))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TflmpError, match="does not exist"):
        read_model(tmp_path / "nope.tflite")
    with pytest.raises(TflmpError, match="is a directory"):
        read_model(tmp_path)
