"""The 32-bit arena derivation against arena_used_bytes() and the smallest working arena
measured on Cortex-M4 (QEMU mps2-an386, arm-none-eabi-gcc 12) with real TFLM trees:
tflite-micro / esp-tflite-micro of 2026 and tflite-micro-arduino-examples of 2023."""

import pytest

from conftest import shared
from tflm_pipeline.mcu import arena
from tflm_pipeline.tflite import memory_plan
from tflm_pipeline.tflite.model_info import read_model

# model: {profile: (arena_used_bytes, smallest arena that works)}, measured.  The
# CMSIS-NN profiles are the kernels an Arduino IDE build of Chirale compiles, without
# TF_LITE_STATIC_MEMORY (the IDE cannot define it), or with it.
MEASURED = {
    "hello_world_int8.tflite": {
        "tflm-2026": (676, 1072), "tflm-2023": (660, 1056),
        "chirale-2.0.0-cmsis-nn": (820, 1152),
        "chirale-2.0.0-cmsis-nn-static-memory": (724, 1120)},
    "micro_speech_quantized.tflite": {
        "tflm-2026": (6788, 6800), "tflm-2023": (6788, 6800),
        "chirale-2.0.0-cmsis-nn": (6916, 6928),
        "chirale-2.0.0-cmsis-nn-static-memory": (6804, 6816)},
    "person_detect.tflite": {
        "tflm-2026": (82292, 82304), "tflm-2023": (82228, 82240),
        "chirale-2.0.0-cmsis-nn": (82740, 82752),
        "chirale-2.0.0-cmsis-nn-static-memory": (82308, 82320)},
}
PROFILES = ["tflm-2026", "tflm-2023", "chirale-2.0.0-cmsis-nn",
            "chirale-2.0.0-cmsis-nn-static-memory"]


@pytest.mark.parametrize("name", MEASURED)
@pytest.mark.parametrize("profile", PROFILES)
def test_estimate_matches_cortex_m4_measurements(name, profile):
    used, smallest = MEASURED[name][profile]
    e = arena.estimate(read_model(shared("models", name)), profile)
    assert (e.used, e.bytes) == (used, smallest)
    assert e.exact and e.bytes % 16 == 0


def test_small_models_are_bound_by_planning_not_the_final_state():
    e = arena.estimate(read_model(shared("models", "hello_world_int8.tflite")), "tflm-2026")
    assert e.binding == "planning" and e.bytes > e.used


def test_head_is_the_memory_plan_and_same_on_all_releases(hello_world_int8):
    info = read_model(shared("models", "person_detect.tflite"))
    plans = {arena.estimate(info, p).planned for p in ("tflm-2026", "tflm-2023")}
    assert plans == {memory_plan.plan(info).planned_bytes}


def test_unmeasured_ops_are_sized_generously_and_reported():
    info = read_model(shared("models", "trained_lstm_int8.tflite"))  # LSTM: not in the table
    e = arena.estimate(info, "tflm-2026")
    assert not e.exact and "UNIDIRECTIONAL_SEQUENCE_LSTM" in e.unmeasured_ops


def test_unmeasured_architecture_is_flagged():
    info = read_model(shared("models", "person_detect.tflite"))
    e = arena.estimate(info, "esp-tflite-micro-1.4-xtensa")
    assert not e.exact and e.bytes > arena.estimate(info, "tflm-2026").bytes
    # the Arduino core's 2023 TFLM starts from the 2023 sizes, the component's from 2026's
    old = arena.estimate(info, "esp-tflite-micro-1.2-xtensa")
    assert not old.exact and old.bytes > arena.estimate(info, "tflm-2023").bytes
    assert old.bytes - arena.estimate(info, "tflm-2023").bytes == \
        e.bytes - arena.estimate(info, "tflm-2026").bytes  # the same Xtensa allowance


def test_target_takes_the_largest_release():
    info = read_model(shared("models", "person_detect.tflite"))
    e = arena.largest(info, ["tflm-2023", "tflm-2026"])
    assert e.bytes == 82304 and e.release == "tflm-2026"
