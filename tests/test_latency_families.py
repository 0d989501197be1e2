"""Counted Cortex-M4 instructions priced by kernel family (boards.yaml, mcu/cpi.py), and
the board build's optimisation level (targets.yaml) in the Cortex-M4 library's flags and
cache key.  Fast: no TFLM tree, nothing compiled."""

from pathlib import Path

import pytest

from conftest import shared
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.mcu import boards, latency
from tflm_pipeline.mcu.build_check import (HOST_OPTIMIZE, HOST_TOOLCHAIN, Tree, compile_flags,
                                           library_key)
from tflm_pipeline.mcu.cpi import CONV_DENSE, DEPTHWISE
from tflm_pipeline.mcu.qemu_harness import CORTEX_M4
from tflm_pipeline.mcu.targets import get_target, optimize_level, targets

INSTRUCTIONS = 10_000_000


def test_factor_per_family_from_boards_yaml():
    k = boards.get_board("arduino-nano33ble").kernels
    depthwise, conv = k.instruction_factor(DEPTHWISE), k.instruction_factor(CONV_DENSE)
    assert depthwise.factors == (2.194, 2.329) and depthwise.validation_error == 0.061
    assert conv.factors == (1.722, 1.790) and conv.validation_error == 0.039
    assert depthwise.band == pytest.approx((2.194 * 0.939, 2.329 * 1.061))
    with pytest.raises(TflmpError, match="no calibrated cycles per instruction"):
        boards.get_board("esp32").kernels.instruction_factor(DEPTHWISE)


def test_a_boards_file_gives_one_range_or_factors_per_family(tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text("kernels:\n  cortex-m4/cmsis-nn:\n    cycles_per_instruction: [2.0, 2.5]\n")
    k = boards.get_board("arduino-nano33ble", one).kernels
    assert k.instruction_factor(DEPTHWISE).band == k.instruction_factor(CONV_DENSE).band \
        == (2.0, 2.5)
    only = tmp_path / "only.yaml"
    only.write_text("kernels:\n  cortex-m4/cmsis-nn:\n    cycles_per_instruction:\n"
                    "      depthwise: {factors: [2.2, 2.3]}\n")
    k = boards.get_board("arduino-nano33ble", only).kernels
    assert k.instruction_factor(DEPTHWISE).band == (2.2, 2.3)
    with pytest.raises(TflmpError, match="no calibrated cycles per instruction for conv-dense"):
        k.instruction_factor(CONV_DENSE)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kernels:\n  cortex-m4/cmsis-nn:\n    cycles_per_instruction:\n"
                   "      winograd: {factors: [2.2, 2.3]}\n")
    with pytest.raises(TflmpError, match="unknown kernel family 'winograd'"):
        boards.get_board("arduino-nano33ble", bad)


@pytest.mark.parametrize("model, family", [("person_detect.tflite", DEPTHWISE),
                                           ("hello_world_int8.tflite", CONV_DENSE)])
def test_profile_prices_a_counted_model_by_its_family(model, family):
    from tflm_pipeline.commands.profile import profile

    p = profile(shared("models", model), board="arduino-nano33ble",
                measured_instructions=INSTRUCTIONS)
    lo, hi = boards.get_board("arduino-nano33ble").kernels.instruction_factor(family).band
    band = p.board.latency
    assert band.low_ms == pytest.approx(INSTRUCTIONS * lo / 64e3)
    assert band.high_ms == pytest.approx(INSTRUCTIONS * hi / 64e3)
    assert f"for {family} models" in band.basis
    # the MAC band stays for the boards nothing was counted on
    other = next(b for b in p.boards if b.board.name == "arduino-nano33ble").latency
    assert "MACs x" in other.basis


def test_counted_build_is_named_in_the_basis():
    nano = boards.get_board("arduino-nano33ble")
    band = latency.latency_band([], nano, latency.Measurement(
        instructions=INSTRUCTIONS, build="chirale (CMSIS-NN), built for the Cortex-M4 at -Os"))
    assert band.basis.endswith("counted on chirale (CMSIS-NN), built for the Cortex-M4 at -Os")


def test_targets_state_their_optimisation_level():
    assert get_target("arduino-nano33ble").optimize == "-Os"
    assert get_target("platformio").optimize == "-Os"
    assert get_target("esp-idf").optimize == "-O2"  # its sdkconfig.defaults: ..._PERF
    assert all(t.optimize.startswith("-O") for t in targets().values())
    with pytest.raises(TflmpError, match="target 'x': optimize must be one of"):
        optimize_level("x", {"optimize": "-O9"})
    with pytest.raises(TflmpError, match="optimize must be one of"):
        optimize_level("x", {})


def test_the_optimisation_level_is_in_the_cortex_m4_flags_and_cache_key(tmp_path):
    tree = Tree(tmp_path, [], [tmp_path], ["-DARDUINO"], "CMSIS-NN kernels", None)
    board_build = tree.for_target(get_target("arduino-nano33ble"))
    assert tree.optimize == HOST_OPTIMIZE == "-O2" and board_build.optimize == "-Os"
    flags = compile_flags(CORTEX_M4, board_build, False)
    assert "-Os" in flags and "-O2" not in flags
    # host builds stay at -O2 whatever the target
    assert compile_flags(HOST_TOOLCHAIN, board_build, False) == \
        compile_flags(HOST_TOOLCHAIN, tree, False)
    key = library_key(CORTEX_M4, tree, "gcc 13", "digest")
    assert library_key(CORTEX_M4, board_build, "gcc 13", "digest") != key
    assert library_key(CORTEX_M4, tree, "gcc 13", "digest") == key  # stable
    moved = Tree(Path(tmp_path / "elsewhere"), [], [tmp_path / "elsewhere"], ["-DARDUINO"],
                 "CMSIS-NN kernels", None)
    assert library_key(CORTEX_M4, moved, "gcc 13", "digest") == key  # not where it lies
    assert "-Os" in board_build.cortex_m4_build
