"""The known-issues table (firmware/known_issues.yaml): it loads and validates, each rule
fires on a real small model that meets its condition and not on one that does not, its
remedy happens in `tflmp firmware`, and a refusal is one line with exit code 2."""

import re

import pytest
import yaml

from tiny_tflite import conv, fully_connected
from tflm_pipeline import firmware
from tflm_pipeline.cli import main
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.firmware_files import path
from tflm_pipeline.mcu.known_issues import fired_rules, known_issues, parse_table
from tflm_pipeline.mcu.targets import get_target, targets
from tflm_pipeline.tflite.model_info import per_channel_dense_layers, read_model

S3_OLD = ("esp-tflite-micro-1.2-xtensa", "ESP32-S3")  # arduino-esp32 3.0.4's bundle
S3_NEW = ("esp-tflite-micro-1.4-xtensa", "ESP32-S3")  # ESP-IDF component, esp-nn >= 1.1.1
ESP32 = ("esp-tflite-micro-1.4-xtensa", "ESP32-D0WD")


def fired(model: bytes, *platforms) -> list[str]:
    return [r.id for r in fired_rules(read_model(model), list(platforms))]


def test_table_loads_with_a_source_for_every_rule():
    issues = known_issues()
    assert {"tflm-per-channel-fc-2024", "cmsis-nn-fc-weight-offset", "esp-tflite-micro-fc-rank3",
            "esp-nn-34", "esp-nn-31", "esp-nn-30"} <= set(issues)
    for issue in issues.values():
        assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/(issues/\d+|pull/\d+|commit/"
                            r"[0-9a-f]{40})",
                            issue.source), issue.id
        assert issue.releases and issue.reason and issue.library
    # the flag it replaces is gone from targets.yaml; the behaviour is the table's
    assert "per_channel_dense" not in path("targets.yaml").read_text()
    assert {n: t.per_channel_dense for n, t in targets().items()} == {
        "arduino-nano33ble": False, "esp32": False, "esp-idf": True, "platformio": False}


@pytest.mark.parametrize("change, message", [
    (lambda r: r["esp-nn-34"]["condition"].update(rows_over=1),
     "rule 'esp-nn-34' has unknown condition 'rows_over'"),
    (lambda r: r["esp-nn-30"].update(releases=["esp-tflite-micro-9"]),
     "unknown TFLM release"),
    (lambda r: r["esp-nn-31"].update(remedy="ignore"),
     "use one of requantize-per-tensor, reshape-dense-2d, refuse"),
    (lambda r: r["esp-nn-31"].pop("source"), "needs a non-empty 'source'"),
    (lambda r: r["esp-nn-30"]["condition"].update(filter=[3]), "expected [height, width]"),
    (lambda r: r["esp-nn-34"]["condition"].update(filter=[3, 3]),
     "condition 'filter' applies to CONV_2D and DEPTHWISE_CONV_2D, not FULLY_CONNECTED"),
])
def test_a_malformed_table_is_one_clear_error(change, message):
    raw = yaml.safe_load(path("known_issues.yaml").read_text())
    change(raw)
    with pytest.raises(TflmpError, match=re.escape(message)):
        parse_table(raw, "known_issues.yaml")


def test_per_channel_dense_rule_fires_for_tflm_before_september_2024():
    per_channel = fully_connected((1, 16), 2, per_channel=True)
    per_tensor = fully_connected((1, 16), 2, per_channel=False)
    old = [("chirale-2.0.0-cmsis-nn", None), ("esp-tflite-micro-1.2-xtensa", "ESP32-D0WD")]
    for platform in old:
        assert fired(per_channel, platform) == ["tflm-per-channel-fc-2024"]
        assert fired(per_tensor, platform) == []
    assert fired(per_channel, ("esp-tflite-micro-1.4-xtensa", "ESP32-D0WD")) == []
    assert fired(per_channel, ("tflm-2026", None)) == []


def test_cmsis_nn_ignores_a_dense_weight_zero_point():
    asymmetric = fully_connected((1, 16), 2, per_channel=False, weight_zero_point=3)
    nano = ("chirale-2.0.0-cmsis-nn", None)
    assert fired(asymmetric, nano) == ["cmsis-nn-fc-weight-offset"]
    assert fired(fully_connected((1, 16), 2, per_channel=False), nano) == []
    # the reference kernels of the same TFLM apply the offset
    assert fired(asymmetric, ("chirale-2.0.0", None)) == []
    assert fired(asymmetric, ("esp-tflite-micro-1.2-xtensa", "ESP32-D0WD")) == []


def test_esp_tflite_micro_before_1_3_2_misreads_a_rank_3_dense_output():
    sequence = fully_connected((1, 4, 16), 2, per_channel=False)  # output [1, 4, 2]
    for chip in ("ESP32-D0WD", "ESP32-S3"):
        assert fired(sequence, ("esp-tflite-micro-1.2-xtensa", chip)) == [
            "esp-tflite-micro-fc-rank3"]
    assert fired(sequence, ESP32) == fired(sequence, S3_NEW) == []  # 1.4.0 has the fix
    assert fired(fully_connected((4, 16), 2, per_channel=False),
                 ("esp-tflite-micro-1.2-xtensa", "ESP32-D0WD")) == []


def test_esp_nn_34_misaligned_dense_rows_on_the_s3_only():
    # 4 rows of 12 bytes: rows 2-4 start off a 16-byte boundary
    misaligned = fully_connected((4, 12), 2, per_channel=False)
    assert fired(misaligned, S3_NEW) == fired(misaligned, S3_OLD) == ["esp-nn-34"]
    assert fired(fully_connected((1, 4, 12), 2, per_channel=False), S3_NEW) == ["esp-nn-34"]
    assert fired(misaligned, ESP32) == []  # the plain ESP32 runs other code
    assert fired(fully_connected((4, 16), 2, per_channel=False), S3_NEW) == []
    # one row starts where TFLM's arena puts it, 16-byte aligned, whatever its width
    assert fired(fully_connected((1, 12), 2, per_channel=False), S3_NEW) == []


def test_esp_nn_31_asymmetric_same_padding_with_a_leading_pad():
    # 5x5 stride 2 on 8x8: SAME pads 1 before, 2 after on both axes
    assert fired(conv((8, 8), 8, kernel=(5, 5)), S3_NEW) == ["esp-nn-31"]
    # 3x3 stride 2 on 7x8: height pads (1, 1), width (0, 1): the symmetric branch drops
    # the right column
    assert fired(conv((7, 8), 8), S3_NEW) == ["esp-nn-31"]
    assert fired(conv((7, 8), 8), ESP32) == []
    assert fired(conv((8, 8), 8), S3_NEW) == []  # (0, 1): esp-nn 1.2.1 pads the end
    assert fired(conv((7, 7), 8), S3_NEW) == []  # (1, 1) both ways
    assert fired(conv((7, 8), 4), S3_NEW) == []  # 3 x 4 channels: the im2col path
    assert fired(conv((8, 8), 8, kernel=(5, 5), padding="VALID"), S3_NEW) == []


def test_esp_nn_before_1_2_1_drops_a_pad_only_at_the_end():
    # 3x3 stride 2 on 8x8, as MobileNet's stride-2 layers: pads (0, 1) on both axes
    assert fired(conv((8, 8)), S3_OLD) == ["esp-nn-conv-trailing-pad"]
    assert fired(conv((7, 8), 8), S3_OLD) == ["esp-nn-conv-trailing-pad"]
    assert fired(conv((8, 8)), ("esp-tflite-micro-1.2-xtensa", "ESP32-D0WD")) == []
    assert fired(conv((7, 7)), S3_OLD) == []
    assert fired(conv((8, 8), kernel=(1, 1), stride=1), S3_OLD) == []


def test_esp_nn_30_depthwise_scratch_with_uneven_padding():
    # the layer of the issue: 49x20x32 in, 3x3 stride 2 -> leading pads (1, 0)
    assert fired(conv((20, 49), 32, 32, depthwise=True), S3_NEW) == ["esp-nn-30"]
    assert fired(conv((20, 49), 32, 32, depthwise=True), S3_OLD) == []  # esp-nn 1.1
    assert fired(conv((20, 49), 32, 32, depthwise=True), ESP32) == []
    assert fired(conv((20, 20), 32, 32, stride=1, depthwise=True), S3_NEW) == []  # (1, 1)
    assert fired(conv((20, 49), 24, 24, depthwise=True), S3_NEW) == []  # 24 % 16 != 0
    assert fired(conv((20, 49), 16, 32, depthwise=True), S3_NEW) == []  # multiplier 2


@pytest.mark.slow  # two projects with golden vectors and a re-quantization run in TFLM (~6 s)
def test_firmware_requantizes_dense_for_old_tflm_and_says_so(tmp_path, capsys):
    model = tmp_path / "head.tflite"
    model.write_bytes(fully_connected((1, 16), 2, per_channel=True))
    result = firmware(model, "arduino-nano33ble", tmp_path / "nano")
    (rule,) = result.known_issues
    assert rule.id == "tflm-per-channel-fc-2024" and rule.ops == (0,)
    assert "re-quantized to one scale each" in rule.action and "int8 steps" in rule.action
    (source,) = result.project.out_dir.glob("*_model_data.cc")
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})",
                                                source.read_text().split("= {", 1)[1]))
    assert per_channel_dense_layers(read_model(model)) and not per_channel_dense_layers(
        read_model(data))
    assert result.to_dict()["known_issues"][0]["id"] == rule.id
    # the console names the rule, its source and what was done
    from tflm_pipeline import console

    console.firmware_result(result)
    out = capsys.readouterr().out
    assert ("known issue tflm-per-channel-fc-2024 "
            "(https://github.com/tensorflow/tflite-micro/pull/2673): outputs change") in out
    # TFLM of 2026 computes per-channel Dense layers: nothing fires, the model is kept
    assert firmware(model, "esp-idf", tmp_path / "idf").known_issues == []
    assert get_target("esp-idf").per_channel_dense
    # a project for the ESP32 whose model an ESP32-S3 would compute wrong says so
    padded = tmp_path / "padded.tflite"
    padded.write_bytes(conv((7, 8), 8))
    project = firmware(padded, "esp-idf", tmp_path / "idf-conv").project
    (note,) = [n for n in project.notes if "esp-nn-31" in n]
    assert note.startswith("known issue esp-nn-31 (https://github.com/espressif/esp-nn/issues/31)"
                           " not for ESP32-S3: ESP-NN 1.2.x computes the last output row")
    assert "esp-nn-31" in (project.out_dir / "tflmp_project.json").read_text()


@pytest.mark.slow  # a project with golden vectors and a comparison in TFLM (~4 s)
def test_firmware_computes_a_sequence_dense_in_2d_for_old_esp_tflite_micro(tmp_path):
    model = tmp_path / "sequence.tflite"
    model.write_bytes(fully_connected((1, 4, 12), 3, per_channel=False))
    result = firmware(model, "esp32", tmp_path / "esp32", task="regression")
    (rule,) = result.known_issues
    assert rule.id == "esp-tflite-micro-fc-rank3"
    assert "outputs identical in TFLM on 64 random inputs" in rule.action
    (source,) = result.project.out_dir.glob("*_model_data.cc")
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})",
                                                source.read_text().split("= {", 1)[1]))
    info = read_model(data)
    assert [op.name for op in info.operators] == ["FULLY_CONNECTED", "RESHAPE"]
    assert info.outputs[0].shape == (1, 4, 3)
    (resolver,) = result.project.out_dir.glob("*_op_resolver.h")
    assert "AddReshape()" in resolver.read_text()


def test_profile_board_names_the_rule_and_a_refusal_exits_2(tmp_path, capsys):
    dense = tmp_path / "dense.tflite"
    dense.write_bytes(fully_connected((1, 16), 2, per_channel=True))
    assert main(["profile", str(dense), "--board", "esp32"]) == 0
    out = capsys.readouterr().out
    assert ("known issue tflm-per-channel-fc-2024 (https://github.com/tensorflow/tflite-micro/"
            "pull/2673): tflmp firmware gives the Dense layers one scale each") in out
    sequence = tmp_path / "sequence.tflite"
    sequence.write_bytes(fully_connected((1, 4, 16), 2, per_channel=False))
    assert main(["profile", str(sequence), "--board", "esp32"]) == 0
    assert ("known issue esp-tflite-micro-fc-rank3 (https://github.com/espressif/"
            "esp-tflite-micro/commit/eeb4e8587094e3c816d9c345e3d77a7b5002dc99): tflmp firmware "
            "computes the Dense layers as [rows, units]") in capsys.readouterr().out
    padded = tmp_path / "padded.tflite"
    padded.write_bytes(conv((7, 8)))
    assert main(["profile", str(padded), "--board", "esp32-s3"]) == 2
    assert_one_line_refusal(capsys.readouterr().err, "esp-nn-conv-trailing-pad",
                            "https://github.com/espressif/esp-nn/commit/"
                            "27d1f4ab114547878b665f8de5ed6c5756ab3d90")


def test_firmware_refusal_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    model = tmp_path / "asym.tflite"
    model.write_bytes(fully_connected((1, 16), 2, per_channel=False, weight_zero_point=3))
    out = tmp_path / "nano"
    assert main(["convert", str(model), "--target", "arduino-nano33ble", "--out", str(out)]) == 2
    assert_one_line_refusal(capsys.readouterr().err, "cmsis-nn-fc-weight-offset",
                            "https://github.com/tensorflow/tflite-micro/issues/2267")
    assert not out.exists()


def assert_one_line_refusal(err: str, rule: str, source: str):
    errors = [ln for ln in err.splitlines() if ln.startswith("tflmp: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"tflmp: error: known issue {rule} ({source}): op 0 "), err
    assert "Traceback" not in err
