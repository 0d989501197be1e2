"""Anomaly detectors on the device (issue 17, edge 7): the firmware computes the
reconstruction-error score from the int8 tensors exactly as tflmp does (the same double,
on the host and on a Cortex-M4 under QEMU), states the threshold chosen on validation
data in the settings header, prints score and verdict, and its golden self-test checks
the score."""

import re
import subprocess

import numpy as np
import pytest

from conftest import require_tool, run_cli
from tflm_pipeline import firmware
from tflm_pipeline.data import load_dataset
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.firmware_files import path as firmware_file
from tflm_pipeline.mcu.build_check import (CM4_FLAGS, COMMON_FLAGS, CXX_FLAGS,
                                           compile_board_main, qemu_command)
from tflm_pipeline.mcu.targets import targets
from tflm_pipeline.tasks import AUTOENCODER
from tflm_pipeline.tflm.harness import anomaly_scores, anomaly_threshold
from tflm_shim import host_self_test, self_test_kit

@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """A small dense autoencoder fitted briefly on normal samples, as int8 TFLite, and an
    .npz of normal (0) and anomalous (1) samples."""
    from tflm_pipeline.models import build_model
    from tflm_pipeline.quantize.int8 import to_int8_tflite
    from tflm_pipeline.tf_env import load

    _, keras, _ = load()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 24))
    normal = rng.normal(size=(400, 3)) @ basis + rng.normal(0, 0.1, (400, 24))
    anomalous = rng.normal(0, 2.0, (60, 24))
    x = np.concatenate([normal, anomalous]).astype(np.float32)
    y = np.concatenate([np.zeros(400, int), np.ones(60, int)])
    folder = tmp_path_factory.mktemp("ae")
    np.savez(folder / "machine.npz", x=x, y=y)
    data = load_dataset(str(folder / "machine.npz"))
    x_train, y_train = data.inputs("train")
    model = build_model("autoencoder", (24,), 0, units=16, bottleneck=3)
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    normal_train = x_train[y_train == 0]
    model.fit(normal_train, normal_train, epochs=40, batch_size=32, verbose=0)
    tflite = folder / "ae.tflite"
    tflite.write_bytes(to_int8_tflite(model, normal_train[:200]))
    return tflite, folder / "machine.npz", data


def _code(project):
    return project.out_dir / {"esp-idf": "main", "platformio": "src"}.get(project.target, "")


@pytest.mark.slow  # fits and converts a Keras model
def test_threshold_is_chosen_on_validation_and_stated_once(detector, tmp_path):
    tflite, npz, data = detector
    project = firmware(tflite, "esp-idf", tmp_path / "idf", name="ae", task="anomaly",
                       dataset=str(npz)).project
    code = _code(project)
    x_val, y_val = data.inputs("val")
    model = tflite.read_bytes()
    chosen = anomaly_threshold(model, x_val, y_val)
    assert 0 < (y_val != 0).sum() < len(y_val) and chosen.method.startswith("best F1")
    settings = (code / "ae_model_settings.h").read_text()
    stated = re.findall(r"static const double ae_anomaly_threshold = (\S+);", settings)
    assert stated and float(stated[0]) == chosen.value  # the same double
    assert chosen.method in settings
    runner = (code / "ae_runner.cc").read_text()
    assert "score > ae_anomaly_threshold" in runner and "int Classify(" not in runner
    main = (code / "main.cc").read_text()
    assert "ae::IsAnomaly(score)" in main and '"ANOMALY"' in main
    # the verdicts separate the planted anomalies on the test split
    x_test, y_test = data.inputs("test")
    flagged = anomaly_scores(model, x_test) > chosen.value
    assert (flagged == (y_test != 0)).mean() > 0.9
    readme = (project.out_dir / "README.md").read_text()
    assert "ae_anomaly_threshold" in readme and chosen.method in readme


@pytest.mark.slow  # fits and converts a Keras model
def test_threshold_given_or_refused(detector, tmp_path):
    tflite, npz, _ = detector
    with pytest.raises(TflmpError, match="needs its threshold: give --threshold VALUE"):
        firmware(tflite, "esp32", tmp_path / "a", name="ae", task="autoencoder")
    p = run_cli("firmware", tflite, "--target", "platformio", "--task", "anomaly",
                "--threshold", "0.125", "--name", "ae", "--out", tmp_path / "b")
    assert p.returncode == 0, p.stderr
    assert "anomaly threshold 0.125: given with --threshold" in p.stdout
    settings = (tmp_path / "b" / "src" / "ae_model_settings.h").read_text()
    assert "static const double ae_anomaly_threshold = 0.125;" in settings
    # every target's main prints score and verdict, and compiles
    for target in targets():
        project = firmware(tflite, target, tmp_path / target.replace("-", "_"), name="ae",
                           task="anomaly", threshold=0.125).project
        main = compile_board_main(project.out_dir, target, _code(project))
        assert main.passed, main.output
    p = run_cli("firmware", tflite, "--target", "esp-idf", "--threshold", "0.1",
                "--out", tmp_path / "c")
    assert p.returncode == 2 and "--threshold is an anomaly detector's" in p.stderr
    assert "Traceback" not in p.stderr


def _self_test_sources(project, tmp_path):
    """The runner, model, golden vectors and a fake TFLM answering the golden inputs with
    the outputs TFLM computed, and the check main: the self-test without a TFLM tree."""
    code = _code(project)
    shim, main, fake = self_test_kit(code, "ae", project.target, tmp_path)
    return shim, [main, code / "ae_runner.cc", code / "ae_model_data.cc", fake]


def _golden_with(project, tmp_path, text: str):
    copy = tmp_path / "code"
    copy.mkdir(exist_ok=True)
    for f in _code(project).glob("ae_*"):
        copy.joinpath(f.name).write_bytes(f.read_bytes())
    copy.joinpath("ae_golden.h").write_text(text)
    return copy


def _one_score_off(golden: str) -> str:
    """The golden header with vector 0's expected score moved by one unit in the last
    place (the next double up)."""
    head, tail = golden.split("ae_golden_scores")
    first = re.search(r"^\s+(\S+),$", tail, re.MULTILINE)
    moved = repr(float(np.nextafter(float(first.group(1)), np.inf)))
    return head + "ae_golden_scores" + tail[:first.start(1)] + moved + tail[first.end(1):]


@pytest.mark.slow  # fits and converts a Keras model
def test_golden_self_test_checks_the_score_on_the_host(detector, tmp_path):
    require_tool("g++")
    tflite, npz, _ = detector
    project = firmware(tflite, "esp-idf", tmp_path / "idf", name="ae", task="anomaly",
                       dataset=str(npz)).project
    code = _code(project)
    kit = self_test_kit(code, "ae", project.target, tmp_path)
    golden = (code / "ae_golden.h").read_text()
    expected = [float(v) for v in re.findall(r"^\s+(\S+),$", golden.split(
        "ae_golden_scores")[1], re.MULTILINE)]
    assert len(expected) == 4 and all(v > 0 for v in expected)

    def self_test(golden_text):
        return host_self_test(code, "ae", kit, tmp_path, replace={"ae_golden.h": golden_text})

    ok = self_test(golden)
    assert ok.returncode == 0, ok.stdout
    assert ("self-test PASS (4/4 vectors exact, 4/4 anomaly scores exact, raw input vector "
            "exact)" in ok.stdout)
    bad = self_test(_one_score_off(golden))  # one unit in the last place of one score
    assert bad.returncode == 1, bad.stdout
    assert "golden vector 0 anomaly score" in bad.stdout
    assert ("self-test FAIL (0/4 vectors differ, by up to 0 LSB; 1/4 anomaly scores differ; "
            "raw input vector exact)" in bad.stdout)


@pytest.mark.slow  # fits and converts a Keras model
def test_the_score_is_the_same_double_on_a_cortex_m4(detector, tmp_path):
    # soft-float doubles on the M4 (and its single-precision FPU's FMA unused) give the
    # scores tflmp computed with NumPy on this 64-bit host, bit for bit
    for tool in ("arm-none-eabi-g++", "qemu-system-arm"):
        require_tool(tool)
    tflite, npz, _ = detector
    project = firmware(tflite, "platformio", tmp_path / "pio", name="ae", task="anomaly",
                       dataset=str(npz)).project
    shim, sources = _self_test_sources(project, tmp_path)
    golden = (_code(project) / "ae_golden.h").read_text()

    def run_m4(golden_text):
        code = _golden_with(project, tmp_path, golden_text)
        objects = []
        for src in sources:
            src = code / src.name if src.parent == _code(project) else src
            obj = tmp_path / f"{src.stem}.o"
            subprocess.run(["arm-none-eabi-g++", *CM4_FLAGS, *COMMON_FLAGS, *CXX_FLAGS,
                            "-I", str(code), "-I", str(shim), "-c", str(src), "-o", str(obj)],
                           check=True)
            objects.append(str(obj))
        startup = tmp_path / "startup.o"
        subprocess.run(["arm-none-eabi-gcc", *CM4_FLAGS, "-O2", "-c",
                        str(firmware_file("check/cm4_startup.c")), "-o", str(startup)],
                       check=True)
        elf = tmp_path / "check.elf"
        subprocess.run(["arm-none-eabi-g++", *CM4_FLAGS, "--specs=rdimon.specs", "-nostartfiles",
                        "-T", str(firmware_file("check/mps2_an386.ld")), "-Wl,--gc-sections",
                        str(startup), *objects, "-lm", "-o", str(elf)], check=True)
        return subprocess.run(qemu_command(elf), capture_output=True, text=True, timeout=120)

    ok = run_m4(golden)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ("self-test PASS (4/4 vectors exact, 4/4 anomaly scores exact, raw input vector "
            "exact)" in ok.stdout)
    bad = run_m4(_one_score_off(golden))
    assert bad.returncode == 1 and "1/4 anomaly scores differ" in bad.stdout, bad.stdout


def test_int8_scores_are_the_sequential_double_sum():
    # the NumPy twin of the C loop: element-order accumulation, not pairwise summation
    rng = np.random.default_rng(1)
    q_in = rng.integers(-128, 128, (3, 640)).astype(np.int8)
    q_out = rng.integers(-128, 128, (3, 640)).astype(np.int8)
    scores = AUTOENCODER.int8_scores(q_in, q_out, (0.0371, -3), (0.0213, 5))
    for i in range(3):
        total = 0.0
        for a, b in zip(q_in[i].tolist(), q_out[i].tolist()):
            d = (b - 5) * float(np.float32(0.0213)) - (a + 3) * float(np.float32(0.0371))
            total += d * d
        assert scores[i] == total / 640
