"""Streaming helpers and the camera path of the generated runner (issue 13): the runner is
compiled with the host g++ against the TFLM declarations (tflm_shim) and a fake
interpreter, then fed a recorded sensor stream sample by sample, a synthetic score
sequence and camera frames; each answer must equal what the Python pipeline computes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require_tool, shared
from tflm_pipeline.codegen.golden import GoldenVectors
from tflm_pipeline.codegen.project import ProjectSpec, write_firmware_project
from tflm_pipeline.codegen.stream import stream_settings
from tflm_pipeline.data.image_folder import _read_image, frame_to_sample
from tflm_pipeline.mcu.targets import get_target
from tflm_pipeline.preprocessing import Preprocessing
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.tflite.quant import dequantize, quantize
from tflm_shim import self_test_kit
from tiny_tflite import conv, fully_connected

DAPHNET = shared("datasets", "timeseries", "daphnet", "S06R02E0.csv")
WINDOW, STRIDE, STREAMED_ROWS = 64, 24, 300

_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "%(name)s_runner.h"
alignas(16) static uint8_t arena[%(name)s::kArenaBytes];
static void Print(const char*) {}
static uint32_t Micros() { return 0; }
#ifdef TFLMP_TEST_QEMU  // CMSDK timer 0 at 25 MHz; with -icount shift=0, 40 instructions a tick
static volatile uint32_t* const kTimer0 = (volatile uint32_t*)0x40000000;
static void StartCount() { kTimer0[0] = 0; kTimer0[2] = kTimer0[1] = 0xFFFFFFFFu; kTimer0[0] = 1; }
static unsigned Instructions() { return (0xFFFFFFFFu - kTimer0[1]) * 40u; }
#else
static void StartCount() {}
static unsigned Instructions() { return 0; }
#endif
static void Hex(const int8_t* v, int n) {
  for (int i = 0; i < n; ++i) printf("%%02x", (unsigned)(uint8_t)v[i]);
}
int main(int argc, char** argv) {
#ifdef TEST_MODE  // QEMU passes no arguments
  const char* mode = TEST_MODE;
  (void)argc; (void)argv;
#else
  const char* mode = argc > 1 ? argv[1] : "";
#endif
  (void)arena; (void)Print; (void)Micros; (void)Hex; (void)StartCount; (void)Instructions;
%(body)s
  return 0;
}
"""

_SENSOR_BODY = r"""
  if (strcmp(mode, "stream") == 0) {
    %(name)s::Begin(arena, sizeof(arena), Print, Micros);
    float row[%(macro)s_STREAM_CHANNELS];
    for (;;) {
      for (int c = 0; c < %(macro)s_STREAM_CHANNELS; ++c) {
        if (scanf("%%f", &row[c]) != 1) return 0;
      }
      if (%(name)s::PushSample(row)) {
        printf("%%u ", (unsigned)%(name)s::StreamSamples());
        Hex(%(name)s::StreamWindow(), %(macro)s_INPUT_BYTES);
        printf(" %%d\n", %(name)s::ClassifyStream(nullptr));
      }
    }
  }
  // smoother: lines "time q0 q1 ..." -> "time label permille" of every output
  %(name)s::Smoother smoother%(smoother_args)s;
  unsigned now;
  int8_t out[%(macro)s_OUTPUT_ELEMENTS];
  while (scanf("%%u", &now) == 1) {
    for (int i = 0; i < %(macro)s_OUTPUT_ELEMENTS; ++i) {
      int v;
      if (scanf("%%d", &v) != 1) return 1;
      out[i] = (int8_t)v;
    }
    int permille;
    const int label = smoother.Process(out, now, &permille);
    printf("%%u %%d %%d\n", now, label, permille);
  }
"""

_CAMERA_BODY = r"""
  // frames: "width height format" then the bytes as hex -> the int8 input (or "rejected")
  (void)mode;
  int w, h, f;
  // room for the rejected frame too (one pixel wider than the largest)
  static uint8_t frame[(%(macro)s_CAMERA_MAX_FRAME_WIDTH + 1) *
                       %(macro)s_CAMERA_MAX_FRAME_HEIGHT * 3];
  int8_t input[%(macro)s_INPUT_BYTES];
  while (scanf("%%d %%d %%d", &w, &h, &f) == 3) {
    for (long i = 0; i < (long)w * h * f; ++i) {
      unsigned v;
      if (scanf("%%2x", &v) != 1) return 1;
      frame[i] = (uint8_t)v;
    }
    StartCount();
    if (!%(name)s::FrameToInput(frame, w, h, (%(name)s::PixelFormat)f, input)) {
      printf("rejected\n");
      continue;
    }
    const unsigned instructions = Instructions();
    Hex(input, %(macro)s_INPUT_BYTES);
    printf(" %%u\n", instructions);
  }
"""


def _project(tmp: Path, name: str, model: bytes, pre: Preprocessing, *, hop=None,
             golden_inputs=None, golden_outputs=None, audio_frontend=None,
             output="class", threshold=None) -> Path:
    """A generated esp-idf project of ``model`` (its code folder)."""
    info = read_model(model)
    target = get_target("esp-idf")
    if golden_inputs is None:
        golden_inputs = np.zeros((1, *info.inputs[0].shape[1:]), np.int8)
        golden_outputs = np.zeros((1, *info.outputs[0].shape[1:]), np.int8)
    vectors = GoldenVectors(golden_inputs, golden_outputs, [None] * len(golden_inputs),
                            "test", "none", scores=np.zeros(len(golden_inputs))
                            if output == "anomaly_score" else None)
    write_firmware_project(ProjectSpec(
        target=target, ident=name, out_dir=tmp / name, model=model, info=info,
        source=f"{name}.tflite", preprocessing=pre, output=output,
        labels=pre.labels if output == "class" else [],
        ops=target.registrations(info), arena=target.arena_for(info), vectors=vectors,
        stream_hop=hop, audio_frontend=audio_frontend, threshold=threshold))
    return tmp / name / "main"


def _build(code: Path, name: str, tmp: Path, body: str, cortex_m4: bool = False, **fmt) -> Path:
    """The runner + model data + fake TFLM + a test main, compiled for this host, or for
    QEMU's Cortex-M4 board (stdio over semihosting, as `firmware --check`)."""
    if cortex_m4:
        return _build_cm4(code, name, tmp, body, **fmt)
    gxx = require_tool("g++")
    shim, _, fake = self_test_kit(code, name, "esp-idf", tmp)
    values = {"name": name, "macro": name.upper(), "smoother_args": "", **fmt}
    main = tmp / f"{name}_test_main.cc"
    main.write_text(_MAIN % {"name": name, "body": body % values})
    exe = tmp / f"{name}_test"
    objects = []
    for c_source in sorted(code.glob("*.c")):  # an audio model's front end
        objects.append(tmp / f"{c_source.stem}.o")
        subprocess.run([require_tool("gcc"), "-std=c99", "-O1", "-I", str(code), "-c",
                        str(c_source), "-o", str(objects[-1])], check=True)
    subprocess.run([gxx, "-std=c++11", "-O1", "-Wall", "-Wextra", "-Werror", "-DTFLMP_CHECK",
                    "-I", str(code), "-I", str(shim), str(main), str(code / f"{name}_runner.cc"),
                    str(code / f"{name}_model_data.cc"), str(fake), *map(str, objects),
                    "-o", str(exe)], check=True)
    return exe


def _build_cm4(code: Path, name: str, tmp: Path, body: str, mode: str = "", **fmt) -> Path:
    from tflm_pipeline.firmware_files import path as firmware_file
    from tflm_pipeline.mcu.build_check import CM4_FLAGS, CXX_FLAGS

    gxx, gcc = require_tool("arm-none-eabi-g++"), require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    tmp = tmp / f"cm4{mode}"
    tmp.mkdir(exist_ok=True)
    shim, _, fake = self_test_kit(code, name, "esp-idf", tmp)
    values = {"name": name, "macro": name.upper(), "smoother_args": "", **fmt}
    main = tmp / f"{name}_test_main.cc"
    main.write_text(_MAIN % {"name": name, "body": body % values})
    objects = [tmp / "startup.o"]
    subprocess.run([gcc, *CM4_FLAGS, "-O2", "-c", str(firmware_file("check/cm4_startup.c")),
                    "-o", str(objects[0])], check=True)
    for c_source in sorted(code.glob("*.c")):
        objects.append(tmp / f"{c_source.stem}.o")
        subprocess.run([gcc, *CM4_FLAGS, "-std=c99", "-O2", "-I", str(code), "-c",
                        str(c_source), "-o", str(objects[-1])], check=True)
    exe = tmp / f"{name}_test.elf"
    subprocess.run([gxx, *CM4_FLAGS, *CXX_FLAGS, "-O2", "-DTFLMP_CHECK", "-DTFLMP_TEST_QEMU",
                    f'-DTEST_MODE="{mode}"',
                    "-I", str(code), "-I", str(shim), "--specs=rdimon.specs", "-nostartfiles",
                    "-T", str(firmware_file("check/mps2_an386.ld")), "-Wl,--gc-sections",
                    *map(str, objects), str(main), str(code / f"{name}_runner.cc"),
                    str(code / f"{name}_model_data.cc"), str(fake), "-o", str(exe)], check=True)
    return exe


def _run(exe: Path, text: str, *args) -> list[str]:
    if exe.suffix == ".elf":  # the mode was compiled in (_build_cm4)
        from tflm_pipeline.mcu.build_check import qemu_command

        done = subprocess.run(qemu_command(exe), input=text, capture_output=True, text=True,
                              timeout=300, check=True)
    else:
        done = subprocess.run([str(exe), *args], input=text, capture_output=True, text=True,
                              timeout=60, check=True)
    return done.stdout.split("\n")[:-1]


# --- sensors: the stream gives training's windows -------------------------------------

@pytest.fixture(scope="module")
def sensor(tmp_path_factory):
    """A daphnet run's windows (64 rows every 24) and a runner for a model of that input
    whose golden vectors are two of them (the fake TFLM answers those)."""
    from tflm_pipeline.data.sensor_csv import load_csv_windows

    tmp = tmp_path_factory.mktemp("sensor")
    data = load_csv_windows(DAPHNET, window=WINDOW, stride=STRIDE, label_column="is_anomaly")
    pre = data.preprocessing
    pre = Preprocessing(pre.dataset, pre.input_shape, pre.raw_dtype, pre.scale, pre.offset,
                        ["walk", "freeze", "other"], sample_rate_hz=pre.sample_rate_hz)
    model = fully_connected((1, WINDOW * 9), units=3)
    info = read_model(model)
    # every window the pipeline cut from the first STREAMED_ROWS rows, by start row
    windows = {}
    for split in ("train", "val", "test"):
        for line, x in zip(data.sample_ids[split], getattr(data, f"x_{split}")):
            start = line - 2  # CSV line of the first row; line 1 is the header
            if start + WINDOW <= STREAMED_ROWS:
                windows[start] = quantize(pre.apply(x[None]), info.inputs[0])[0]
    golden = np.stack([windows[0].reshape(-1), windows[3 * STRIDE].reshape(-1)])
    outputs = np.array([[90, -90, -90], [-90, 90, -90]], np.int8)
    code = _project(tmp, "gait", model, pre, hop=STRIDE, golden_inputs=golden,
                    golden_outputs=outputs)
    return code, _build(code, "gait", tmp, _SENSOR_BODY), windows, info


def test_pushing_a_recording_gives_the_pipelines_windows(sensor):
    code, exe, windows, _ = sensor
    settings = (code / "gait_model_settings.h").read_text()
    assert "#define GAIT_STREAM_WINDOW_SAMPLES 64" in settings
    assert "#define GAIT_STREAM_HOP_SAMPLES 24" in settings and "--stride" in settings
    readme = (code.parent / "README.md").read_text()
    assert "gait::PushSample(channels)" in readme and "gait::Smoother" in readme
    rows = np.loadtxt(DAPHNET, delimiter=",", skiprows=1, usecols=range(1, 10),
                      max_rows=STREAMED_ROWS, dtype=np.float32)
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in rows)
    lines = _run(exe, text, "stream")
    starts = list(range(0, STREAMED_ROWS - WINDOW + 1, STRIDE))
    assert sorted(windows) == starts  # the pipeline kept every window of the stretch
    assert len(lines) == len(starts)
    for start, line in zip(starts, lines):
        pushed, window, label = line.split()
        assert int(pushed) == start + WINDOW  # ready after the window's last row
        got = np.frombuffer(bytes.fromhex(window), np.int8).reshape(WINDOW, 9)
        assert np.array_equal(got, windows[start]), f"window at row {start}"
        # the fake TFLM knows the windows at rows 0 and 72: they are classified as such
        assert int(label) == {0: 0, 3 * STRIDE: 1}.get(start, -1)


def test_anomaly_and_regression_runs_stream_too(tmp_path):
    from tflm_pipeline.tasks import Threshold

    gxx = require_tool("g++")
    pre = Preprocessing("imu", (8, 3), "float32", [1.0, 2.0, 3.0], [0.0] * 3, [],
                        sample_rate_hz=100.0)
    for name, output, units, call in (("ae", "anomaly_score", 24, "StreamAnomalyScore()"),
                                      ("reg", "values", 2, "PredictStream(values)")):
        threshold = Threshold(0.5, "test", {}) if output == "anomaly_score" else None
        code = _project(tmp_path, name, fully_connected((1, 24), units=units), pre, hop=4,
                        output=output, threshold=threshold)
        header = (code / f"{name}_runner.h").read_text()
        assert call.split("(")[0] in header and "class Smoother" not in header
        shim, _, _ = self_test_kit(code, name, "esp-idf", tmp_path / name)
        main = tmp_path / f"{name}_main.cc"
        main.write_text(f'#include "{name}_runner.h"\nfloat values[2];\nint main() {{\n'
                        f'  const float row[3] = {{0, 0, 0}};\n  {name}::PushSample(row);\n'
                        f'  return (int){name}::{call};\n}}\n')
        for src in (main, code / f"{name}_runner.cc"):
            subprocess.run([gxx, "-std=c++11", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                            "-DTFLMP_CHECK", "-I", str(code), "-I", str(shim), str(src)],
                           check=True)


# --- audio: a clip every half clip ---------------------------------------------------

_AUDIO_BODY = r"""
  (void)mode;
  %(name)s::Begin(arena, sizeof(arena), Print, Micros);
  int sample;
  while (scanf("%%d", &sample) == 1) {
    if (%(name)s::PushAudio((int16_t)sample)) {
      printf("%%u ", (unsigned)%(name)s::StreamSamples());
      Hex((const int8_t*)%(name)s::StreamWindow(), 2 * %(macro)s_INPUT_ELEMENTS);
      printf(" %%d\n", %(name)s::ClassifyStream(nullptr));
    }
  }
"""


def test_pushing_pcm_gives_each_clips_features_every_half_clip(tmp_path):
    from tflm_pipeline.data.audio_features import FeatureParams
    from tflm_pipeline.data.audio_frontend import frontend, to_pcm
    from tflm_pipeline.data.wav_folder import read_wav

    made = frontend("log-mel")
    features = {**FeatureParams().to_dict("log-mel"), "clip_samples": 16000, **made.to_dict()}
    pre = Preprocessing("speech", (49, made.outputs, 1), "float32", 0.5, 2.0,
                        ["silence", "unknown", "yes", "no"], features=features)
    model = shared("models", "micro_speech_quantized.tflite").read_bytes()
    t_in = read_model(model).inputs[0]
    tables = made.c_tables(made.input_levels(pre, lambda x: quantize(x, t_in)))
    wavs = [shared("models", "testdata", "micro_speech", f) for f in
            ("yes_1000ms.wav", "no_1000ms.wav")]
    pcm = to_pcm(np.concatenate([read_wav(w) for w in wavs]))[:24000]
    # the fake TFLM knows the first clip's input (training's features of it): "yes"
    first = quantize(pre.apply(made.dequantize(made.features(pcm[:16000]))[None]), t_in)
    code = _project(tmp_path, "kws", model, pre, audio_frontend=tables,
                    golden_inputs=first.reshape(1, -1),
                    golden_outputs=np.array([[-128, -128, 127, -128]], np.int8))
    settings = (code / "kws_model_settings.h").read_text()
    assert "#define KWS_STREAM_HOP_SAMPLES 8000" in settings
    exe = _build(code, "kws", tmp_path, _AUDIO_BODY)
    lines = _run(exe, "\n".join(str(int(v)) for v in pcm))
    # 49 frames of 480 samples every 320: a clip's features are in 160 samples before its end
    assert len(lines) == 2
    for line, start, label in zip(lines, (0, 8000), (2, -1)):
        pushed, features, got = line.split()
        assert int(pushed) == start + 48 * 320 + 480 and int(got) == label
        want = made.features(pcm[start:start + 16000])
        assert np.array_equal(np.frombuffer(bytes.fromhex(features), "<i2").reshape(want.shape),
                              want)


# --- the smoother: once per event, like RecognizeCommands -----------------------------

def smoother_reference(outputs, times, t_out, *, average, threshold, suppression, min_count,
                       max_results):
    """RecognizeCommands in numpy (float32 like the C): per output, the label reported
    (-1 for none) and the top class's average probability in permille."""
    kept, results = [], []
    last_label, last_time = -1, 0
    for out, now in zip(outputs, times):
        if len(kept) == max_results:
            kept.pop(0)
        kept.append((now, out))
        while len(kept) > 1 and now - kept[0][0] >= average:
            kept.pop(0)
        if len(kept) < min_count:
            results.append((-1, 0))
            continue
        sums = np.sum([o.astype(np.int32) for _, o in kept], axis=0)
        top = int(np.argmax(sums))
        mean = ((np.float32(sums[top]) / np.float32(len(kept)) - np.float32(t_out.zero_points[0]))
                * np.float32(t_out.scales[0]))
        permille = int(mean * np.float32(1000.0) + np.float32(0.5))
        if mean > np.float32(threshold) and (top != last_label or now - last_time > suppression):
            last_label, last_time = top, now
            results.append((top, permille))
        else:
            results.append((-1, permille))
    return results


def _score_sequence(rng, t_out, events, count):
    """``count`` int8 output vectors: low noise, and class c high in [a, b) of ``events``."""
    low = quantize(np.float32(0.2), t_out)
    high = quantize(np.float32(0.95), t_out)
    q = rng.integers(int(quantize(np.float32(0.0), t_out)), int(low) + 1, (count, 3))
    for c, a, b in events:
        q[a:b, c] = rng.integers(int(high) - 1, int(high) + 1, b - a)
    return q.astype(np.int8)


def test_smoother_fires_once_per_event_like_the_reference(sensor):
    code, exe, _, info = sensor
    t_out = info.outputs[0]
    settings = stream_settings(Preprocessing("x", (WINDOW, 9), "float32", 1.0, 0.0, []),
                               info, STRIDE)
    assert (settings.max_results, settings.min_count, settings.suppression) == (3, 3, 96)
    rng = np.random.default_rng(0)
    # short events (class 1, class 2 right after, class 1 later) and one long event
    events = [(1, 10, 14), (2, 14, 18), (1, 30, 33), (0, 45, 60)]
    q = _score_sequence(rng, t_out, events, 70)
    times = np.arange(70) * STRIDE + 1000
    text = "\n".join(f"{t} " + " ".join(str(int(v)) for v in row) for t, row in zip(times, q))
    got = [tuple(int(v) for v in line.split()[1:]) for line in _run(exe, text)]
    want = smoother_reference(q, times, t_out, average=settings.average,
                              threshold=settings.threshold, suppression=settings.suppression,
                              min_count=settings.min_count, max_results=settings.max_results)
    assert got == want
    fired = [(i, label) for i, (label, _) in enumerate(got) if label >= 0]
    labels = [label for _, label in fired]
    assert labels[:3] == [1, 2, 1]  # one detection per short event, a new class at once
    long_event = [i for i, label in fired if label == 0]
    # the long event (15 hops of 24 samples) re-fires only after the suppression time
    assert len(long_event) >= 2 and all(
        (b - a) * STRIDE > settings.suppression for a, b in zip(long_event, long_event[1:]))
    # a time earlier than the last one is refused (it would fire: suppression is unsigned)
    late = _run(exe, "100 90 0 0\n101 90 0 0\n102 90 0 0\n50 90 0 0\n")
    assert [line.split()[1] for line in late] == ["-1", "-1", "0", "-1"]


def test_smoother_settings_from_the_run():
    audio = Preprocessing("speech", (49, 40), "int16", 1.0, 0.0, ["yes", "no"],
                          features={"clip_samples": 16000, "frame_step": 320,
                                    "sample_rate": 16000})
    info = read_model(fully_connected((1, 49 * 40), units=2))
    s = stream_settings(audio, info, None)
    assert (s.kind, s.window, s.hop, s.max_results, s.min_count) == ("audio", 16000, 8000, 2, 2)
    assert s.suppression == 24000  # 1.5 s, micro_speech's 1500 ms for its 1 s clip
    sensor = Preprocessing("imu", (50, 3), "float32", 1.0, 0.0, ["a"], sample_rate_hz=50.0)
    info = read_model(fully_connected((1, 150), units=2))
    assert stream_settings(sensor, info, None) is None  # not a windowed run
    s = stream_settings(sensor, info, 10)
    assert (s.window, s.hop, s.max_results, s.min_count, s.average) == (50, 10, 5, 3, 50)
    ctx = s.to_context("IMU")
    assert ctx["window_ms"] == "1000 ms" and ctx["rate_macro"] == "IMU_SAMPLE_RATE_HZ"


# --- the camera path: training's resize, one table ------------------------------------

def _frames_text(frames) -> str:
    parts = []
    for f in frames:
        f = np.asarray(f, np.uint8)
        h, w = f.shape[:2]
        parts.append(f"{w} {h} {f.shape[2] if f.ndim == 3 else 1}\n{f.tobytes().hex()}")
    return "\n".join(parts) + "\n"


def _camera(tmp, name, hw, channels):
    pre = Preprocessing("images", (*hw, channels), "uint8", 1.0 / 255.0, 0.0, ["a", "b"])
    model = conv(hw, channels=channels, filters=2, stride=1)
    code = _project(tmp, name, model, pre)
    return pre, read_model(model), _build(code, name, tmp, _CAMERA_BODY)


def _expected(pre, info, sample):
    return quantize(pre.apply(sample[None]), info.inputs[0])[0]


def test_camera_frames_give_the_pipelines_input_gray(tmp_path):
    from PIL import Image

    pre, info, exe = _camera(tmp_path, "digit", (28, 28), 1)
    rng = np.random.default_rng(1)
    digit_png = shared("models", "testdata", "mnist_lstm", "sample0.png")
    person = np.asarray(Image.open(shared("models", "testdata", "person_detection",
                                          "person.bmp")))
    rgb = rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)
    # the test image as training reads it (a frame of the model's size)
    digit = _read_image(digit_png, (28, 28), "L")
    frames = [np.asarray(Image.open(digit_png)), person, rgb,
              rng.integers(0, 256, (9, 17), dtype=np.uint8),
              np.zeros((10, 641), np.uint8)]
    lines = _run(exe, _frames_text(frames))
    got = [np.frombuffer(bytes.fromhex(x.split()[0]), np.int8).reshape(28, 28, 1)
           for x in lines[:4]]
    assert np.array_equal(got[0], _expected(pre, info, digit))
    for frame, g in zip(frames[1:4], got[1:]):  # downscale, RGB -> luma + crop, upscale + crop
        assert np.array_equal(g, _expected(pre, info, frame_to_sample(frame, (28, 28),
                                                                      "grayscale")))
    assert lines[4] == "rejected"  # wider than CAMERA_MAX_FRAME_WIDTH


def test_camera_frames_give_the_pipelines_input_rgb(tmp_path):
    from PIL import Image

    pre, info, exe = _camera(tmp_path, "scene", (12, 16), 3)
    rng = np.random.default_rng(2)
    same = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    png = tmp_path / "scene.png"
    Image.fromarray(same).save(png)
    person = np.asarray(Image.open(shared("models", "testdata", "person_detection",
                                          "no_person.bmp")))
    big = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    lines = _run(exe, _frames_text([same, person, big]))
    got = [np.frombuffer(bytes.fromhex(x.split()[0]), np.int8).reshape(12, 16, 3)
           for x in lines]
    assert np.array_equal(got[0], _expected(pre, info, _read_image(png, (12, 16), "RGB")))
    for frame, g in zip((person, big), got[1:]):  # gray -> RGB + crop to 4:3; VGA
        assert np.array_equal(g, _expected(pre, info, frame_to_sample(frame, (12, 16), "rgb")))


def test_pixel_table_is_the_pipelines_preprocessing_and_quantization(tmp_path):
    from tflm_pipeline.codegen.stream import pixel_table

    pre = Preprocessing("img", (4, 4, 3), "uint8", [1 / 255, 2 / 255, 1 / 127.5],
                        [0.0, -1.0, -1.0], ["a"])
    info = read_model(conv((4, 4), channels=3, filters=2, stride=1))
    table = pixel_table(pre, info)
    pixels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    want = quantize(pixels.astype(np.float32) * np.float32(pre.scale) + np.float32(pre.offset),
                    info.inputs[0])
    assert table.shape == (3, 256) and np.array_equal(table, want.T)
    assert np.allclose(dequantize(table[2], info.inputs[0]), pixels[:, 2] / 127.5 - 1,
                       atol=info.inputs[0].scales[0])


# --- end to end: `tflmp firmware` of a sensor run -------------------------------------

@pytest.mark.slow  # trains a small Conv1D model
def test_firmware_of_a_sensor_run_streams_its_windows(tmp_path):
    import csv

    from conftest import run_cli
    from tflm_pipeline.data import load_run_dataset
    from tflm_pipeline.runs import resolve

    rng = np.random.default_rng(0)
    path = tmp_path / "imu.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp_ms", "ax", "ay", "az", "activity"])
        step = 0
        for label, freq in (("walk", 1.0), ("run", 3.0)) * 3:
            for v in np.sin(2 * np.pi * freq * np.arange(200) / 50.0):
                w.writerow([step * 20, f"{v + rng.normal(0, 0.2):.4f}", f"{0.5 * v:.4f}",
                            f"{rng.normal(0, 0.2):.4f}", label])
                step += 1
    run = tmp_path / "run"
    p = run_cli("train", "--out", run, "--max-drop", "100", "--model", "cnn1d", "--dataset",
                path, "--window", "40", "--stride", "16", "--label-column", "activity",
                "--epochs", "1", "--qat-epochs", "0")
    assert p.returncode == 0, p.stderr
    p = run_cli("firmware", run, "--target", "esp-idf", "--out", tmp_path / "fw")
    assert p.returncode == 0, p.stderr
    code = tmp_path / "fw" / "main"
    name = next(code.glob("*_runner.cc")).name[:-len("_runner.cc")]
    settings = (code / f"{name}_model_settings.h").read_text()
    macro = name.upper()
    assert f"#define {macro}_STREAM_WINDOW_SAMPLES 40" in settings
    assert f"#define {macro}_STREAM_HOP_SAMPLES 16" in settings
    assert f"#define {macro}_SAMPLE_RATE_HZ 50.0f" in settings and "(800 ms)" in settings
    exe = _build(code, name, tmp_path, _SENSOR_BODY)
    # the first recording's windows, as the run cut and quantized them
    data = load_run_dataset(resolve(run).run)
    t_in = read_model((run / "model_int8.tflite").read_bytes()).inputs[0]
    windows = {}
    for split in ("train", "val", "test"):
        for line, x in zip(data.sample_ids[split], getattr(data, f"x_{split}")):
            if line - 2 + 40 <= 200:
                windows[line - 2] = quantize(data.preprocessing.apply(x[None]), t_in)[0]
    rows = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2, 3), max_rows=200,
                      dtype=np.float32)
    lines = _run(exe, "\n".join(" ".join(repr(float(v)) for v in r) for r in rows), "stream")
    assert sorted(windows) == list(range(0, 161, 16)) and len(lines) == len(windows)
    for start, line in zip(sorted(windows), lines):
        got = np.frombuffer(bytes.fromhex(line.split()[1]), np.int8).reshape(40, 3)
        assert np.array_equal(got, windows[start].reshape(40, 3)), start


# --- the same answers on a Cortex-M4 ----------------------------------------------------

@pytest.mark.slow  # builds for the Cortex-M4 and runs under QEMU
def test_cortex_m4_gives_the_same_windows_detections_and_frames(sensor, tmp_path):
    from PIL import Image

    code, host_exe, _, info = sensor
    rows = np.loadtxt(DAPHNET, delimiter=",", skiprows=1, usecols=range(1, 10),
                      max_rows=STREAMED_ROWS, dtype=np.float32)
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in rows)
    stream = _build(code, "gait", tmp_path, _SENSOR_BODY, cortex_m4=True, mode="stream")
    assert _run(stream, text) == _run(host_exe, text, "stream")  # proven = the pipeline's
    q = _score_sequence(np.random.default_rng(3), info.outputs[0], [(1, 5, 9), (0, 20, 40)], 50)
    scores = "\n".join(f"{t * STRIDE} " + " ".join(map(str, r)) for t, r in enumerate(q))
    smoother = _build(code, "gait", tmp_path, _SENSOR_BODY, cortex_m4=True, mode="smooth")
    assert _run(smoother, scores) == _run(host_exe, scores)
    # camera: a person_detect-sized input from a VGA RGB frame and a QQVGA gray one
    pre = Preprocessing("people", (96, 96, 1), "uint8", 2 / 255, -1.0, ["no", "yes"])
    model = conv((96, 96), channels=1, filters=2, stride=2)
    camera = _build(_project(tmp_path, "person", model, pre), "person", tmp_path,
                    _CAMERA_BODY, cortex_m4=True)
    person = np.asarray(Image.open(shared("models", "testdata", "person_detection",
                                          "person.bmp")))
    vga = np.asarray(Image.fromarray(np.stack([person] * 3, -1)).resize((640, 480)))
    qqvga = np.asarray(Image.fromarray(person).resize((160, 120)))
    for frame, line in zip((vga, qqvga), _run(camera, _frames_text([vga, qqvga]))):
        got, instructions = line.split()
        want = _expected(pre, read_model(model), frame_to_sample(frame, (96, 96), "grayscale"))
        assert np.array_equal(np.frombuffer(bytes.fromhex(got), np.int8), want.reshape(-1))
        print(f"FrameToInput {frame.shape[1]}x{frame.shape[0]} -> 96x96: "
              f"{int(instructions):,} Cortex-M4 instructions")
