"""One audio feature definition, two builds proven equal (issue 13).

The C front end (firmware/features/tflmp_audio_frontend.c) computes the training features
through ctypes and ships in every audio firmware project.  Checked here: it implements
the float definition of data/audio_features.py (tf.signal's) within stated rounding; a
generated project's sources compiled for the host give the training features bit for bit
(fast); the same sources on a Cortex-M4 under QEMU give the same bits, and what they cost
in flash and RAM (slow); raw WAV -> device features -> TFLM scores exactly the accuracy
training reported, on a keyword set synthesized with espeak-ng and sox (slow).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import require_tool, run_cli, shared

from tflm_pipeline.codegen.audio_frontend import write_audio_frontend
from tflm_pipeline.codegen.settings import write_settings_header
from tflm_pipeline.data import audio_features
from tflm_pipeline.data.audio_features import FeatureParams
from tflm_pipeline.data.audio_frontend import compute, frontend, frontend_for, to_pcm
from tflm_pipeline.data.spec import parse_split
from tflm_pipeline.data.wav_folder import load_wav_folder, read_wav, split_files
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.preprocessing import Preprocessing
from tflm_pipeline.tasks import get_task
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.tflite.quant import quantize

SPEECH = ("models", "testdata", "micro_speech")
CLIPS = ("yes_1000ms", "no_1000ms", "noise_1000ms", "silence_1000ms", "yes_30ms", "no_30ms")
# Rounding of the integer front end against the float64 definition, in natural-log units:
# int16 outputs (MFCC: 2^-8 steps, log-mel 2^-11), Q30 twiddles, 31-bit FFT sums and
# integer magnitudes.  Measured worst case on these clips: MFCC 0.0055, log-mel 0.015 (a
# quiet high band in a loud frame: 1.5 % of its energy), 0.0061 MFCC with CUSTOM below;
# typical 0.001 / 0.0002.
# One int8 input step of the keyword run below is 0.15 MFCC units: 25x the worst error.
TOLERANCE = {"mfcc": (0.01, 0.002), "log-mel": (0.02, 0.001)}  # (max, mean)


def _speech_pcm() -> np.ndarray:
    """The shared micro_speech clips, 30 ms ones zero-padded to 1 s, plus edge cases:
    digital silence, full-scale square wave with -32768, a one-sample click."""
    clips = []
    for name in CLIPS:
        samples = to_pcm(read_wav(shared(*SPEECH, f"{name}.wav")))
        clips.append(np.pad(samples, (0, 16000 - len(samples))))
    square = np.where(np.arange(16000) // 20 % 2, 32767, -32768).astype(np.int16)
    click = np.zeros(16000, np.int16)
    click[8000] = -32768
    return np.stack(clips + [np.zeros(16000, np.int16), square, click])


def _project_sources(out, kind: str, name: str = "kws"):
    """A project's front-end files and settings header, as `tflmp firmware` writes them,
    for micro_speech's int8 input (scale 0.1017, zero point -128) fed x = 0.5 * f + 2;
    returns the folder and every int16 feature's int8 input by tflmp's float maths."""
    made = frontend(kind)
    features = {**FeatureParams().to_dict(kind), "clip_samples": 16000, **made.to_dict()}
    pre = Preprocessing("speech", (49, made.outputs, 1), "float32", 0.5, 2.0, ["a", "b"],
                        features=features)
    info = read_model(shared("models", "micro_speech_quantized.tflite"))
    write_settings_header(info, name, out, preprocessing=pre, arena=None)
    tables = made.c_tables(made.input_levels(pre, lambda x: quantize(x, info.inputs[0])))
    write_audio_frontend(tables, name, out)
    assert frontend_for(features).sha256() == made.sha256()
    values = made.dequantize(np.arange(-32768, 32768))
    expected = quantize(values * np.float32(0.5) + np.float32(2.0), info.inputs[0])
    return out, expected


# tf.signal's parameters in tests/test_data_files.py: 25 ms / 10 ms, 1024-point FFT, 32 bands
CUSTOM = FeatureParams(frame_length_ms=25, frame_step_ms=10, fft_length=1024, num_mel_bins=32,
                       lower_edge_hz=60, upper_edge_hz=7600, num_mfcc=13)


@pytest.mark.parametrize("params", [FeatureParams(), CUSTOM], ids=["kws", "custom"])
@pytest.mark.parametrize("kind", ["mfcc", "log-mel"])
def test_c_front_end_implements_the_float_definition(kind, params):
    pcm = _speech_pcm()[:len(CLIPS)]
    ours = compute(pcm.astype(np.float32) / 32768, kind, params)
    reference = audio_features.compute(pcm.astype(np.float64) / 32768, kind, params)
    made = frontend(kind, params)
    assert ours.shape == reference.shape == (len(CLIPS), params.num_frames(16000), made.outputs)
    error = np.abs(ours - reference)
    worst, mean = TOLERANCE[kind]
    assert error.max() < worst and error.mean() < mean, (error.max(), error.mean())
    # int16 with output_frac_bits fraction bits: the floats training sees are exact steps
    steps = ours * 2.0 ** made.output_frac_bits
    assert np.array_equal(steps, np.round(steps))


@pytest.mark.parametrize("kind", ["mfcc", "log-mel"])
def test_project_sources_on_the_host_equal_training_features(kind, tmp_path):
    from tflm_pipeline.mcu.frontend_check import run_frontend

    require_tool("gcc")
    code, levels = _project_sources(tmp_path, kind)
    pcm = _speech_pcm()
    run = run_frontend(code, "kws", pcm, platform="host")
    device = run.features
    assert device.dtype == np.int16 and np.array_equal(device, frontend(kind).features(pcm))
    # every int16 feature becomes the int8 input tflmp's float32 maths gives, in integers
    assert np.array_equal(run.levels, levels) and len(np.unique(levels)) > 90
    assert np.array_equal(run.inputs, levels[device.astype(np.int32) + 32768])
    header = (code / "kws_audio_frontend.h").read_text()
    settings = (code / "kws_model_settings.h").read_text()
    assert "#define KWS_FEATURE_OUTPUT_FRAC_BITS" in settings
    assert "OUTPUT_FRAC_BITS" not in header.replace("KWS_FEATURE_OUTPUT_FRAC_BITS", "")
    silence = device[len(CLIPS)]  # ln(log_offset) everywhere: the offset is applied
    if kind == "log-mel":
        assert np.all(silence == np.round(np.log(1e-6) * 2 ** 11))


def test_front_end_refuses_what_the_device_cannot_compute():
    with pytest.raises(TflmpError, match="fft_length 500 is not a power of two.*use 512"):
        frontend("mfcc", FeatureParams(fft_length=500))
    with pytest.raises(TflmpError, match="num_mel_bins 300 exceeds fft_length / 2"):
        frontend("log-mel", FeatureParams(num_mel_bins=300, num_mfcc=10))
    with pytest.raises(TflmpError, match="log_offset 1e-12 is below"):
        frontend("mfcc", FeatureParams(log_offset=1e-12))
    features = {**FeatureParams().to_dict("mfcc"), **frontend("mfcc").to_dict()}
    assert frontend_for(None) is None and frontend_for({"type": "mfcc"}) is None
    with pytest.raises(TflmpError, match="retrain the model with this tflmp"):
        frontend_for({**features, "frontend_sha256": "0" * 64})


# --- Cortex-M4 under QEMU ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mfcc", "log-mel"])
def test_cortex_m4_features_equal_host_features_bit_for_bit(kind, tmp_path):
    from tflm_pipeline.mcu.frontend_check import frontend_size, run_frontend

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        require_tool(tool)
    code, levels = _project_sources(tmp_path, kind)
    pcm = _speech_pcm()
    run = run_frontend(code, "kws", pcm, platform="cortex-m4")
    assert np.array_equal(run.features, frontend(kind).features(pcm))
    assert np.array_equal(run.levels, levels)
    size = frontend_size(code, "kws")
    # measured (arm-none-eabi-gcc 12, -O2): code 1,868 B; tables 5,700 B MFCC / 4,100 B
    # log-mel, + 2 B per int8 input level the features reach (510 B for all 256); no
    # static RAM; scratch 4,416 B (2 x 512 int32 + 40 int64)
    assert 1000 < size.code < 2500 and size.tables < 6300 and size.ram == 0
    assert size.scratch == 8 * 512 + 8 * 40


# --- raw keyword WAVs -> device features -> TFLM --------------------------------------

WORDS = ("yes", "no", "up", "down")
VOICES = ("en-us", "en-gb+f3", "en-gb-scotland+m3", "en-029+f2")
SPEEDS, PITCHES = (120, 175), (30, 75)
SPLIT = "6:2:2"


@pytest.fixture(scope="session")
def keyword_clips(tmp_path_factory):
    """4 words x 4 voices x 2 speeds x 2 pitches, spoken by espeak-ng, resampled to 16 kHz
    16-bit mono and mixed with pink noise at two levels by sox, cut to 1 s; the same
    bytes every time (sox -R: repeatable noise and dither)."""
    for tool in ("espeak-ng", "sox"):
        require_tool(tool)
    root = tmp_path_factory.mktemp("keywords")
    noise = []
    for i, volume in enumerate((0.01, 0.03)):
        noise.append(root / f"noise{i}.wav")
        subprocess.run(["sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16",
                        str(noise[-1]), "synth", "1", "pinknoise", "vol", str(volume)],
                       check=True)
    jobs = []
    for word in WORDS:
        (root / "clips" / word).mkdir(parents=True)
        for k, (voice, speed, pitch) in enumerate(itertools.product(VOICES, SPEEDS, PITCHES)):
            out = root / "clips" / word / f"{word}_{k:02d}.wav"
            jobs.append(f"espeak-ng -v {voice} -s {speed} -p {pitch} --stdout {word} | "
                        "sox -R -t wav - -r 16000 -c 1 -b 16 -t wav - | "
                        f"sox -R -m -v 1 -t wav - -v 1 {noise[k % 2]} {out} trim 0 1")
    with ThreadPoolExecutor(2) as pool:
        for r in pool.map(lambda cmd: subprocess.run(cmd, shell=True, capture_output=True),
                          jobs):
            assert r.returncode == 0, r.stderr
    return root / "clips"


@pytest.fixture(scope="session")
def keyword_run(keyword_clips, tmp_path_factory):
    """An MLP trained on the synthesized keywords (MFCC from the C front end)."""
    run = tmp_path_factory.mktemp("kws") / "run"
    p = run_cli("train", "--model", "mlp", "--dataset", keyword_clips, "--epochs", "20",
                "--qat-epochs", "0", "--split", SPLIT, "--out", run)
    assert p.returncode == 0, p.stderr
    return run


@pytest.mark.slow
def test_raw_wav_to_device_features_to_tflm_scores_the_training_accuracy(keyword_clips,
                                                                         keyword_run,
                                                                         tmp_path):
    from tflm_pipeline.mcu.frontend_check import run_frontend
    from tflm_pipeline.tflm import interpreter
    from tflm_pipeline.tflm.harness import evaluate

    for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm"):
        require_tool(tool)
    run, fw = keyword_run, tmp_path / "fw"
    p = run_cli("firmware", run, "--target", "esp-idf", "--out", fw)
    assert p.returncode == 0, p.stderr
    code = fw / "main"
    assert '"mlp_audio_frontend.c"' in (code / "CMakeLists.txt").read_text()
    metrics = json.loads((run / "report.json").read_text())["metrics"]
    trained = metrics[metrics["selected"]]["accuracy"]

    pre = Preprocessing.load(run / "preprocessing.json")
    made = frontend_for(pre.features)
    labels, parts = split_files(keyword_clips, seed=0, split=parse_split(SPLIT))
    files, y = parts["test"]
    pcm = np.zeros((len(files), 16000), np.int16)
    for row, f in enumerate(files):
        samples = to_pcm(read_wav(f))
        pcm[row, :len(samples)] = samples[:16000]
    device = run_frontend(code, "mlp", pcm, platform="cortex-m4")
    host = run_frontend(code, "mlp", pcm, platform="host")
    assert np.array_equal(device.features, host.features)
    assert np.array_equal(device.inputs, host.inputs)
    # the device's features are the ones training stored for these clips ...
    stored = load_wav_folder(keyword_clips, split=parse_split(SPLIT)).x_test[..., 0]
    assert np.array_equal(made.dequantize(device.features), stored)
    # ... its int8 inputs (integers only) are those tflmp scored the model with ...
    model = (run / "model_int8.tflite").read_bytes()
    info = read_model(model)
    x = pre.apply(made.dequantize(device.features))
    assert np.array_equal(device.inputs.reshape(x.shape[0], -1),
                          quantize(x, info.inputs[0]).reshape(x.shape[0], -1))
    # ... and through TFLM they score what training reported
    out = interpreter.run(model, device.inputs.reshape(-1, *info.inputs[0].shape[1:]),
                          info=info)[0]
    accuracy = float(np.mean(out.reshape(len(y), -1).argmax(axis=1) == y))
    score = evaluate(model, get_task("classification"), {"test": (x, y)}, len(labels))["test"]
    print(f"raw WAV -> Cortex-M4 features and int8 inputs -> TFLM: {accuracy:.4f} on "
          f"{len(files)} test clips; training reported {trained:.4f}")
    assert accuracy == score["accuracy"] == trained and score["n"] == len(files) >= 12
    assert trained >= 0.5, f"the keyword model learned little: {trained:.2f}"


@pytest.mark.slow
def test_self_test_starts_from_raw_pcm(keyword_run, tmp_path):
    # golden vector 0 also comes as its clip's PCM: on the board the front end must give
    # training's features and the vector's int8 input; a wrong feature constant fails it
    from tflm_pipeline import firmware
    from tflm_shim import host_self_test, self_test_kit

    require_tool("g++")
    project = firmware(keyword_run, "esp-idf", tmp_path / "fw").project
    code = project.out_dir / "main"
    golden = (code / "mlp_golden.h").read_text()
    assert "#define MLP_GOLDEN_RAW_VECTOR 0" in golden and "mlp_golden_pcm[16000]" in golden
    runner = (code / "mlp_runner.h").read_text()
    assert "int ClassifyAudio(const int16_t* pcm, int* score_permille);" in runner
    kit = self_test_kit(code, "mlp", "esp-idf", tmp_path)

    def self_test(settings_text: str) -> subprocess.CompletedProcess:
        return host_self_test(code, "mlp", kit, tmp_path,
                              replace={"mlp_model_settings.h": settings_text},
                              c_sources=("mlp_audio_frontend.c", "tflmp_audio_frontend.c"))

    settings = (code / "mlp_model_settings.h").read_text()
    ok = self_test(settings)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "self-test PASS (4/4 vectors exact, raw PCM vector exact)" in ok.stdout
    frac = re.search(r"#define MLP_FEATURE_OUTPUT_FRAC_BITS (\d+)", settings)
    wrong = settings.replace(frac.group(0), f"#define MLP_FEATURE_OUTPUT_FRAC_BITS "
                                            f"{int(frac.group(1)) - 1}")
    bad = self_test(wrong)
    assert bad.returncode == 1, bad.stdout
    assert "raw PCM vector:" in bad.stdout and "differ from training's" in bad.stdout
    assert "raw PCM vector differs" in bad.stdout
