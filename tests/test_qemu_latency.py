"""verify --qemu N (sample choice, the harness's instruction lines) and the latency
calibration's cycles per instruction (per kernel family, boards.yaml against the bench's
recorded counts).  Fast: nothing here builds TFLM; tests/test_firmware.py runs the real
Cortex-M4 harness when TFLMP_TFLM_DIR names a tree."""

import json
from pathlib import Path

import pytest

from conftest import run_cli, shared
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.mcu import boards
from tflm_pipeline.mcu.build_check import TICK_INSTRUCTIONS
from tflm_pipeline.mcu.cpi import (CONV_DENSE, DEPTHWISE, fit_cycles_per_instruction,
                                   kernel_family, predict_ms)
from tflm_pipeline.mcu.qemu_harness import invoke_instructions, sample_indices

BENCH = Path(__file__).resolve().parents[1] / "bench" / "results" / "latency_calibration.json"


def test_samples_are_evenly_spaced_and_the_same_every_run():
    assert sample_indices(180, 8) == [0, 26, 51, 77, 102, 128, 153, 179]
    assert sample_indices(180, 8) == sample_indices(180, 8)
    assert sample_indices(5, 8) == [0, 1, 2, 3, 4]  # more asked than the split holds
    assert sample_indices(10, 1) == [0]
    assert sample_indices(10, 2) == [0, 9]
    with pytest.raises(TflmpError, match="--qemu needs a number of samples >= 1"):
        sample_indices(10, 0)


def test_harness_lines_give_instructions_per_invoke():
    out = ("tflmp-harness: invoke 25000 ticks\nother text\n"
           "tflmp-harness: invoke 25001 ticks\ntflmp-harness: invoke x ticks\n")
    assert invoke_instructions(out) == [25000 * TICK_INSTRUCTIONS, 25001 * TICK_INSTRUCTIONS]
    assert invoke_instructions("self-test PASS") == []


def test_verify_qemu_needs_the_targets_tree():
    model = shared("models", "hello_world_int8.tflite")
    p = run_cli("verify", model, "--dataset", "digits", "--qemu", "8")
    assert p.returncode == 2 and "--qemu N runs the target's Cortex-M4 build" in p.stderr


def test_cycles_per_instruction_per_kernel_family():
    assert kernel_family(["CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX"]) == DEPTHWISE
    assert kernel_family(["FULLY_CONNECTED"]) == CONV_DENSE
    rows = [{"model": "a", "family": DEPTHWISE, "instructions": 100, "published_cycles": 220},
            {"model": "b", "family": DEPTHWISE, "instructions": 300, "published_cycles": 660},
            {"model": "c", "family": CONV_DENSE, "instructions": 1000, "published_cycles": 1800}]
    factors = fit_cycles_per_instruction(rows)
    assert factors == pytest.approx({DEPTHWISE: 2.2, CONV_DENSE: 1.8})
    assert predict_ms(1_200_000, CONV_DENSE, factors, 120) == pytest.approx(18.0)
    with pytest.raises(TflmpError, match="no calibrated cycles per instruction for the depthwise"):
        predict_ms(1, DEPTHWISE, {CONV_DENSE: 1.8}, 120)
    with pytest.raises(TflmpError, match="must be > 0"):
        fit_cycles_per_instruction([{**rows[0], "instructions": 0}])


def test_recorded_calibration_meets_the_goal_and_boards_yaml_matches_it():
    # bench/latency_calibration.py's record: on the published software and flags every
    # validation model is within +-20%, both ways round; boards.yaml's per-family factors
    # are that build's two fits, widened by its largest validation error
    builds = json.loads(BENCH.read_text())["builds"]
    published = builds["tflm-2.4-cmsis-nn-2020-Os"]
    assert "/" not in (published["flags"] or "")  # no machine paths
    for fit in published["fits"]:
        validation = [r for r in fit["rows"] if r["role"] == "validation"]
        assert len(validation) == 2 and all(abs(r["error"]) <= 0.20 for r in validation), fit
    kernels = boards.get_board("arduino-nano33ble").kernels
    for family in (DEPTHWISE, CONV_DENSE):
        fitted = sorted(f["cycles_per_instruction"][family] for f in published["fits"])
        factor = kernels.instruction_factor(family)
        assert factor.factors == pytest.approx(fitted, abs=0.001)
        models = {r["model"] for r in published["rows"] if r["family"] == family}
        errors = [abs(r["error"]) for f in published["fits"] for r in f["rows"]
                  if r["model"] in models and r["role"] == "validation"]
        assert factor.validation_error == pytest.approx(max(errors), abs=0.001)


def test_profile_measure_needs_a_board_and_a_tree():
    from tflm_pipeline.commands.profile import profile

    model = shared("models", "hello_world_int8.tflite")
    with pytest.raises(TflmpError, match="--measure needs --board and --tflm-dir"):
        profile(model, board="arduino-nano33ble", measure=True)
    with pytest.raises(TflmpError, match="--measure counts the instructions itself"):
        profile(model, board="arduino-nano33ble", measure=True, tflm_dir="x", measured_us=5.0)
    with pytest.raises(TflmpError, match="no calibrated cycles per instruction"):
        profile(model, board="esp32", measure=True, tflm_dir=model.parent)


def test_measured_ops_line_names_the_heaviest(capsys):
    from tflm_pipeline import console

    console._measured_ops_line([{"index": 0, "op": "CONV_2D", "instructions": 600},
                                {"index": 1, "op": "FULLY_CONNECTED", "instructions": 400}])
    out = capsys.readouterr().out
    assert "#0 CONV_2D 600 (60%), #1 FULLY_CONNECTED 400 (40%) of 2 ops" in out
    console._measured_ops_line(None)  # TFLM <= 2.4: no per-op counts, no line
    assert capsys.readouterr().out == ""


def test_find_tree_reads_a_tflm_2_4_arduino_library(tmp_path):
    # Arduino_TensorFlowLite <= 2.4 (e.g. Harvard_TinyMLx): kernels/cmsis-nn/*.cpp replace
    # the reference ones, CMSIS-NN's sources lie under micro/tools/make/downloads/cmsis
    root = tmp_path / "lib" / "src"
    micro = root / "tensorflow" / "lite" / "micro"
    nn = micro / "tools" / "make" / "downloads" / "cmsis" / "CMSIS" / "NN" / "Source" / "FC"
    for d in (micro / "kernels" / "cmsis-nn", nn, root / "third_party" / "flatbuffers" / "include"):
        d.mkdir(parents=True)
    (tmp_path / "lib" / "library.properties").write_text("name=Old_TFLM\n")
    (micro / "micro_interpreter.h").write_text("#pragma once\n")
    (micro / "debug_log.h").write_text("extern \"C\" void DebugLog(const char* s);\n")
    for f in (micro / "kernels" / "conv.cpp", micro / "kernels" / "add.cpp",
              micro / "kernels" / "cmsis-nn" / "conv.cpp", nn / "arm_fully_connected_s8.c"):
        f.write_text("int x;\n")
    from tflm_pipeline.mcu.build_check import find_tree

    tree = find_tree(tmp_path / "lib")
    names = {str(p.relative_to(root)) for p in tree.sources}
    assert "tensorflow/lite/micro/kernels/cmsis-nn/conv.cpp" in names
    assert "tensorflow/lite/micro/kernels/conv.cpp" not in names  # replaced
    assert "tensorflow/lite/micro/kernels/add.cpp" in names
    assert any(n.endswith("NN/Source/FC/arm_fully_connected_s8.c") for n in names)
    assert tree.kernels.startswith("CMSIS-NN") and "DebugLog(const char* s)" in tree.debug_log


def test_recorded_chirale_count_is_the_arduino_targets_build_and_priced_as_profile_does():
    # the Chirale row counts what firmware --check / profile --measure build for the
    # Arduino target (its -Os), and its recorded band is today's boards.yaml band
    from tflm_pipeline.mcu.targets import get_target

    build = json.loads(BENCH.read_text())["builds"]["chirale-2.0.0-Os"]
    assert build["flags"] is None and build["optimize"] is None  # the target's level
    assert get_target("arduino-nano33ble").optimize == "-Os"
    kernels = boards.get_board("arduino-nano33ble").kernels
    for row, band in zip(build["rows"], build["boards_yaml"]["rows"]):
        lo, hi = kernels.instruction_factor(row["family"]).band
        assert band["low_ms"] == pytest.approx(row["instructions"] * lo / 120e3)
        assert band["high_ms"] == pytest.approx(row["instructions"] * hi / 120e3)
        assert row["outputs_equal_pip"]
