"""Raw sensor input on the device (issue 13): the float -> int8 rule is one definition in
Python and C (bit-exact on this host and on a Cortex-M4F under QEMU, ties and FMA traps
included); float-input projects carry a raw-input golden vector the boot self-test runs
through Classify()'s own raw -> int8 code (a constant off by a few ulp fails it); on a
Daphnet run every test window's device inputs equal training's and the end-to-end figure
equals the run's (slow); the USER HOOK says what the input is and wires the board's
sensors, compiled with and without them."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import require_tool, run_cli, shared
from tiny_tflite import fully_connected
from tflm_pipeline.codegen.settings import write_settings_header
from tflm_pipeline.codegen.user_hook import user_hook
from tflm_pipeline.data.audio_features import FeatureParams
from tflm_pipeline.data.audio_frontend import frontend
from tflm_pipeline.preprocessing import Preprocessing
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.tflite.quant import quantize, rounding_margin

DAPHNET = ("datasets", "timeseries", "daphnet", "S06R02E0.csv")
IMU_PRE = Preprocessing("imu", (8, 3), "float32", [0.00123, 0.0371, 1 / 9.81],
                        [-0.37, 1.1, 0.05], ["a", "b"], sample_rate_hz=50.0)


def _boundary_values(pre: Preprocessing, scale: float) -> np.ndarray:
    """Raw float32 values whose standardized value lands on, or within 6 ulp of, every
    rounding boundary (k + 0.5) * scale of the int8 range, per channel; (N, 24)."""
    cols = []
    for c in range(pre.channels):
        near = []
        for k in range(-140, 140):
            centre = np.float32(((k + 0.5) * scale - pre.offset[c]) / pre.scale[c])
            up = down = centre
            near.append(centre)
            for _ in range(6):
                up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down,
                                                                              np.float32(-np.inf))
                near += [up, down]
        cols.append(near)
    n = min(map(len, cols)) // 8 * 8
    return np.stack([np.array(c[:n], np.float32) for c in cols], axis=1).reshape(-1, 24)


def test_raw_to_int8_rule_is_bit_exact_in_c_on_host_and_cortex_m4(tmp_path, rng):
    # numpy float32 (x*scale)+offset, /scale, roundf, +zero point vs the generated C, on
    # values sitting on and around every rounding boundary, random and integer values
    from tflm_pipeline.mcu.raw_input_check import run_raw_inputs

    require_tool("gcc")
    info = read_model(fully_connected(input_shape=(1, 24), units=2, per_channel=False))
    t_in = info.inputs[0]
    write_settings_header(info, "imu", tmp_path, preprocessing=IMU_PRE, arena=None)
    s = np.float32(t_in.scales[0])
    raw = np.concatenate([_boundary_values(IMU_PRE, float(s)),
                          rng.normal(0, 500, (200, 24)).astype(np.float32),
                          rng.integers(-4000, 4000, (200, 24)).astype(np.float32)])
    x = IMU_PRE.apply(raw).reshape(len(raw), -1)
    v = x / s
    ties = int(np.sum(v - np.trunc(v) == np.copysign(np.float32(0.5), v)))
    assert ties > 500  # exact ties, which round half away from zero
    # v = 0.49999997: floor(v + 0.5) says 1, roundf says 0 (quantize() is roundf)
    tricky = np.float32(0.49999997) * s
    assert np.float32(tricky / s) == np.float32(0.49999997)
    assert quantize(np.float32([tricky, -tricky]), t_in).tolist() == [0, 0]
    raw[-1, :2] = [tricky, -tricky]
    x = IMU_PRE.apply(raw).reshape(len(raw), -1)
    expected, direct = quantize(x, t_in), quantize(raw, t_in)
    platforms = ["host"] + (["cortex-m4"] if shutil.which("qemu-system-arm")
                            and shutil.which("arm-none-eabi-gcc") else [])
    for platform in platforms:
        got = run_raw_inputs(tmp_path, "imu", raw, platform=platform)
        assert np.array_equal(got.from_raw, expected), platform
        assert np.array_equal(got.quantized, direct), platform
    if "cortex-m4" in platforms:
        # without the volatile product GCC fuses raw*scale+offset into one VFMA on the
        # Cortex-M4F (-ffp-contract=fast, GNU C's default): values on a boundary move
        header = tmp_path / "imu_model_settings.h"
        header.write_text(header.read_text().replace("volatile float scaled", "float scaled"))
        fused = run_raw_inputs(tmp_path, "imu", raw, platform="cortex-m4").from_raw
        assert np.sum(fused != expected) > 0


def test_rounding_margin_finds_ties_and_skips_saturated_values():
    info = read_model(fully_connected(input_shape=(1, 4), units=2, per_channel=False))
    t = info.inputs[0]
    s = float(np.float32(t.scales[0]))
    margin = rounding_margin(np.float32([2.5 * s, 3 * s, 1000.0, 2.25 * s]), t)
    assert margin[0] == 0 and margin[1] == pytest.approx(0.5, abs=1e-5)
    assert margin[2] == np.inf and margin[3] == pytest.approx(0.25, abs=1e-5)


def test_user_hook_words_say_shape_rate_order_and_channels():
    hook = user_hook(IMU_PRE, (1, 8, 3), ["acc_x", "acc_y", "gyro_z"], audio=False)
    text = " ".join(hook["lines"])
    assert hook["kind"] == "series" and all(len(line) <= 86 for line in hook["lines"])
    assert "8 rows x 3 channels at 50 Hz (0.16 s), oldest row first" in text
    assert "Channels, in order: acc_x, acc_y, gyro_z." in text and "units" in text
    assert [c["value"] for c in hook["imu"]] == [0, 1, 5]  # accel x, y; gyro z
    made = frontend("mfcc")
    features = {**FeatureParams().to_dict("mfcc"), "clip_samples": 16000, **made.to_dict()}
    audio = user_hook(Preprocessing("kw", (49, made.outputs, 1), "float32", 1.0, 0.0, ["a"],
                                    features=features), (1, 49, made.outputs, 1), None, True)
    assert "16000 16-bit mono PCM samples at 16000 Hz (1 s)" in " ".join(audio["lines"])


def _comments(text: str) -> str:
    """A source's // comment lines as one line of words."""
    return " ".join(ln.strip()[3:] for ln in text.splitlines() if ln.strip().startswith("// "))


def _sensor_project(tmp_path, target: str, pre: Preprocessing, model: bytes):
    """`tflmp firmware` of a model file with a preprocessing.json beside it."""
    from tflm_pipeline import firmware

    src = tmp_path / "m"
    src.mkdir(exist_ok=True)
    (src / "model.tflite").write_bytes(model)
    pre.save(src / "preprocessing.json")
    return firmware(src / "model.tflite", target, tmp_path / target.replace("-", "_"),
                    name="imu").project


@pytest.mark.parametrize("target", ["arduino-nano33ble", "esp-idf"])
def test_user_hook_compiles_with_and_without_the_board_sensor(target, tmp_path):
    # the main's hook with TFLMP_USE_IMU / TFLMP_USE_MIC off and on, against declared
    # sensor library APIs (firmware/check/platform); without the library the switch is a
    # clear #error, never a silent build without the sensor
    from tflm_pipeline.firmware_files import path as firmware_file
    from tflm_pipeline.mcu.build_check import compile_board_main, main_file

    require_tool("g++")
    model = fully_connected(input_shape=(1, 24), units=2, per_channel=False)
    project = _sensor_project(tmp_path, target, IMU_PRE, model)
    code = project.out_dir / ("main" if target == "esp-idf" else "")
    main = main_file(project.out_dir, "esp-idf" if target == "esp-idf" else "arduino", code)
    text = main.read_text()
    assert "8 rows x 3 channels at 50 Hz (0.16 s), oldest row first" in _comments(text)
    check = compile_board_main(project.out_dir, target, code)
    assert check.passed, check.output
    if target == "esp-idf":  # no IMU on an ESP32
        assert "TFLMP_USE_IMU" not in text and "(1 board and sensor variant(s))" in check.output
        return
    assert "(3 board and sensor variant(s))" in check.output  # off, LSM9DS1, BMI270
    assert "#include <Arduino_LSM9DS1.h>" in text and "IMU.readAcceleration(" in text
    bare = tmp_path / "no_sensor_libraries"
    shutil.copytree(firmware_file("check/platform"), bare)
    for library in ("Arduino_LSM9DS1.h", "Arduino_BMI270_BMM150.h"):
        (bare / library).unlink()
    r = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-x", "c++", f"-I{bare}",
                        f"-I{code}", "-DARDUINO", "-DARDUINO_ARCH_MBED", "-include", "Arduino.h",
                        "-DTFLMP_USE_IMU=1", str(main)], capture_output=True, text=True)
    assert r.returncode != 0 and "install Arduino_LSM9DS1" in r.stderr


# --- a Daphnet run (slow: trains) -----------------------------------------------------


@pytest.fixture(scope="module")
def daphnet_run(tmp_path_factory):
    """A small autoencoder on the Daphnet recording (9 accelerometer axes at 64 Hz, all
    normal): 0.5 s windows every 0.25 s, one epoch."""
    run = tmp_path_factory.mktemp("daphnet") / "run"
    p = run_cli("train", "--model", "autoencoder", "--dataset", shared(*DAPHNET), "--window",
                "32", "--stride", "16", "--label-column", "is_anomaly", "--epochs", "1",
                "--qat-epochs", "0", "--out", run)
    assert p.returncode == 0, p.stderr
    return run


@pytest.fixture(scope="module")
def daphnet_project(daphnet_run, tmp_path_factory):
    """The run's ESP-IDF project."""
    from tflm_pipeline import firmware

    return firmware(daphnet_run, "esp-idf", tmp_path_factory.mktemp("fw") / "fw").project


@pytest.mark.slow
def test_daphnet_device_inputs_equal_training_on_every_test_window(daphnet_run,
                                                                   daphnet_project):
    # raw CSV rows -> the project's C (host, Cortex-M4 under QEMU) -> int8 inputs equal
    # tflmp's byte for byte; -> TFLM -> the verdict accuracy the run recorded
    from tflm_pipeline.mcu.sensor_parity import sensor_parity

    require_tool("gcc")
    project = daphnet_project
    platforms = ("host", "cortex-m4") if shutil.which("qemu-system-arm") else ("host",)
    parity = sensor_parity(daphnet_run, project.out_dir / "main", project.name,
                           platforms=platforms)
    assert parity.samples >= 40 and parity.values == 32 * 9
    assert parity.exact, parity.to_dict()
    assert parity.metric == "verdict accuracy" and parity.training is not None
    assert parity.python == parity.training
    for figures in parity.platforms.values():
        assert figures["device"] == parity.training
    sketch = _comments((project.out_dir / "main" / "main.cc").read_text())
    assert "32 rows x 9 channels at 64 Hz (0.5 s)" in sketch
    assert "Channels, in order: ankle_horiz_fwd, ankle_vert, ankle_horiz_lateral," in sketch


@pytest.mark.slow
def test_self_test_starts_from_raw_sensor_rows_and_a_wrong_scale_fails(daphnet_run,
                                                                        daphnet_project,
                                                                        tmp_path):
    # golden.h holds one test window's raw rows (the one nearest a rounding boundary); the
    # self-test runs input_from_raw on them; one channel's scale moved by the fewest ulp
    # that change one int8 input makes it FAIL, naming the raw vector
    from tflm_pipeline.codegen.c_literals import c_float
    from tflm_shim import host_self_test, self_test_kit

    require_tool("g++")
    project = daphnet_project
    code, name = project.out_dir / "main", project.name
    golden = (code / f"{name}_golden.h").read_text()
    vector = int(re.search(rf"#define {name.upper()}_GOLDEN_RAW_SAMPLE_VECTOR (\d+)",
                           golden).group(1))
    # Daphnet's accelerometer counts are whole numbers: stored as int16_t, half a float's flash
    assert f"static const int16_t {name}_golden_raw[288]" in golden
    body = golden.split(f"{name}_golden_raw[")[1].split("};")[0].split("{", 1)[1]
    raw = np.array([float(v) for v in re.findall(r"-?\d+", body)], np.float32)
    assert raw.size == 32 * 9
    kit = self_test_kit(code, name, "esp-idf", tmp_path)

    def self_test(settings_text: str) -> subprocess.CompletedProcess:
        # GNU C++: the compiler may fuse multiply-add, as board builds do
        return host_self_test(code, name, kit, tmp_path,
                              replace={f"{name}_model_settings.h": settings_text},
                              std="gnu++11")

    settings = (code / f"{name}_model_settings.h").read_text()
    ok = self_test(settings)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "self-test PASS (4/4 vectors exact, 4/4 anomaly scores exact, raw input vector " \
           "exact)" in ok.stdout

    # the value nearest a boundary, and the fewest ulp of its channel's scale that move it
    pre = Preprocessing.load(daphnet_run / "preprocessing.json")
    info = read_model((daphnet_run / "model_int8.tflite").read_bytes())
    t_in = info.inputs[0]
    x = pre.apply(raw[None]).reshape(-1)
    i = int(np.argmin(rounding_margin(x, t_in)))
    c = i % pre.channels
    want = quantize(x[i:i + 1], t_in)[0]
    scale, offset = np.float32(pre.scale[c]), np.float32(pre.offset[c])
    for ulps in range(1, 1000):
        moved = [scale + np.float32(d) * np.spacing(scale) for d in (ulps, -ulps)]
        hit = [m for m in moved
               if quantize(np.float32([np.float32(raw[i] * m) + offset]), t_in)[0] != want]
        if hit:
            break
    assert ulps < 1000
    pattern = re.compile(rf"(static const float {name}_raw_scale\[{name.upper()}_RAW_CHANNELS\]"
                         r" = \{ )([^}]*)( \};)")
    values = pattern.search(settings).group(2).split(", ")
    values[c] = c_float(hit[0])
    wrong = pattern.sub(lambda m: m.group(1) + ", ".join(values) + m.group(3), settings)
    bad = self_test(wrong)
    assert bad.returncode == 1, bad.stdout
    assert re.search(rf"raw input vector {vector}: \d+ of 288 int8 inputs differ from "
                     "training's", bad.stdout), bad.stdout
    assert "raw input vector differs" in bad.stdout
    print(f"scale of channel {c} moved by {ulps} ulp: {bad.stdout.splitlines()[-2]}")


@pytest.mark.slow  # compile-only, but ~5 s: kept out of the fast tier's budget
@pytest.mark.parametrize("target", ["arduino-nano33ble", "esp-idf"])
def test_audio_hook_wires_the_microphone_to_classify_audio(target, tmp_path):
    # Nano 33 BLE Sense: PDM microphone; ESP-IDF: I2S microphone (i2s_std); with
    # TFLMP_USE_MIC the loop hands 16-bit clips to ClassifyAudio(), without it floats to
    # Classify(); both compile
    from tflm_pipeline.mcu.build_check import compile_board_main, main_file

    require_tool("g++")
    params = FeatureParams(num_mel_bins=40)  # micro_speech's 49 x 40 input
    made = frontend("log-mel", params)
    features = {**params.to_dict("log-mel"), "clip_samples": 16000, **made.to_dict()}
    pre = Preprocessing("speech", (49, made.outputs, 1), "float32", 0.5, 2.0,
                        ["silence", "unknown", "yes", "no"], features=features)
    model = shared("models", "micro_speech_quantized.tflite").read_bytes()
    project = _sensor_project(tmp_path, target, pre, model)
    code = project.out_dir / ("main" if target == "esp-idf" else "")
    text = main_file(project.out_dir, "esp-idf" if target == "esp-idf" else "arduino",
                     code).read_text()
    assert "one clip of 16000 16-bit mono PCM samples at 16000 Hz (1 s)" in _comments(text)
    assert ("PDM.begin(1, IMU_FEATURE_SAMPLE_RATE)" if target != "esp-idf"
            else "i2s_channel_init_std_mode(") in text
    assert "ClassifyAudio(pcm" in text
    check = compile_board_main(project.out_dir, target, code)
    assert check.passed, check.output
    assert "(2 board and sensor variant(s))" in check.output  # microphone off and on


@pytest.mark.slow  # no training, but g++ builds the runner: ~5 s
def test_image_raw_vector_is_pixels_and_passes_the_self_test(tmp_path):
    # an outside model with --dataset digits: the raw vector is the test image's pixels
    # (uint8_t in golden.h), through the same input_from_raw as Classify()
    from tflm_pipeline import firmware
    from tflm_shim import host_self_test, self_test_kit

    require_tool("g++")
    src = tmp_path / "digits.tflite"
    src.write_bytes(fully_connected(input_shape=(1, 64), units=10, per_channel=False))
    project = firmware(src, "esp-idf", tmp_path / "fw", dataset="digits", name="digits").project
    code = project.out_dir / "main"
    golden = (code / "digits_golden.h").read_text()
    assert "static const uint8_t digits_golden_raw[64]" in golden
    kit = self_test_kit(code, "digits", "esp-idf", tmp_path)
    out = host_self_test(code, "digits", kit, tmp_path, std="gnu++11").stdout
    assert "self-test PASS (4/4 vectors exact, raw input vector exact)" in out, out
