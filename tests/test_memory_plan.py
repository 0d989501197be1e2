"""The Python memory planner reproduces TFLM's own plan (the arena's non-persistent head)."""

import pytest

from conftest import shared
from tflm_pipeline.tflite import memory_plan
from tflm_pipeline.tflm import interpreter
from tflm_pipeline.tflite.model_info import read_model


@pytest.mark.parametrize("name", ["hello_world_int8.tflite", "person_detect.tflite",
                                  "micro_speech_quantized.tflite"])
def test_plan_equals_tflm_head_on_example_models(name):
    model = shared("models", name).read_bytes()
    plan = memory_plan.plan(read_model(model))
    recorded = interpreter.recorded_allocations(model, 1 << 20)
    assert plan.planned_bytes == recorded.head
    assert plan.lower_bound <= plan.planned_bytes


def test_plan_equals_tflm_head_on_trained_lenet(trained_lenet):
    for key in ("ptq_tflite", "qat_tflite"):
        model = trained_lenet[key]
        plan = memory_plan.plan(read_model(model))
        assert plan.planned_bytes == interpreter.recorded_allocations(model, 1 << 20).head


def test_greedy_planner_reuses_dead_buffers():
    # three buffers: a(0..1) 100, b(1..2) 50, c(2..3) 100 -> c can reuse a's space
    offsets = memory_plan.greedy_offsets([(112, 0, 1), (48, 1, 2), (112, 2, 3)])
    assert offsets == [0, 112, 0]
    assert memory_plan.greedy_offsets([(16, 0, 0), (32, 0, 0)]) == [32, 0]
    # equal sizes: the later buffer is placed first, as TFLM's reverse-filled sort does
    assert memory_plan.greedy_offsets([(16, 0, 0), (16, 0, 0)]) == [16, 0]


def test_peak_and_live_tensors(hello_world_int8):
    plan = memory_plan.plan(read_model(hello_world_int8))
    d = plan.to_dict()
    assert d["lower_bound_bytes"] == sum(t["bytes"] for t in d["live_at_peak"])
