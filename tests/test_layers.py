import numpy as np

from conftest import shared
from tflm_pipeline.quantize import int8
from tflm_pipeline.tflite import layers
from tflm_pipeline.tflite.model_info import read_model


def test_lenet_macs_equal_the_hand_count():
    from tflm_pipeline.models import build_model

    model = build_model("lenet", (28, 28, 1), 10)
    calib = np.random.default_rng(0).random((20, 28, 28, 1), dtype=np.float32)
    info = read_model(int8.to_int8_tflite(model, calib))
    rows = layers.layers(info)
    convs = [r.macs for r in rows if r.op == "CONV_2D"]
    dense = [r.macs for r in rows if r.op == "FULLY_CONNECTED"]
    assert convs == [117_600, 240_000, 48_000] and dense == [10_080, 840]
    assert layers.totals(info)["macs"] == 416_520
    assert rows[0].output_shapes == [[1, 28, 28, 6]] and rows[0].activation_bytes == 4704


def test_person_detect_macs():
    # MobileNet v1 0.25 at 96x96: the published figure is about 7.5 M MACs.
    info = read_model(shared("models", "person_detect.tflite"))
    assert 7_000_000 < layers.totals(info)["macs"] < 7_600_000
