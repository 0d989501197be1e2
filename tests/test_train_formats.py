"""`tflmp train` end to end on the data formats and tasks beyond the built-in sets:
sensor CSV windows, image folders, WAV folders, autoencoder anomaly detection, and the
--max-drop gate."""

import csv
import json
import re
import wave

import numpy as np
import pytest

from conftest import run_cli, shared
from tflm_pipeline.tflite.model_info import per_channel_dense_layers, read_model

pytestmark = pytest.mark.slow  # every test here runs `tflmp train`


def _train(tmp_path, *args):
    run = tmp_path / "run"
    p = run_cli("train", "--out", run, "--max-drop", "100", *args)
    assert p.returncode == 0, p.stderr
    return run, json.loads((run / "report.json").read_text()), p


def test_csv_sensor_windows_with_conv1d(tmp_path, rng):
    path = tmp_path / "imu.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session", "ax", "ay", "az", "activity"])
        for session in range(6):
            for label, freq in (("walk", 1.0), ("run", 3.0), ("idle", 0.2)):
                t = np.arange(240) / 50.0
                for v in np.sin(2 * np.pi * freq * t):
                    w.writerow([session, v + rng.normal(0, 0.2), 0.5 * v, rng.normal(0, 0.2),
                                label])
    run, report, p = _train(tmp_path, "--model", "cnn1d", "--dataset", path, "--window", "48",
                            "--stride", "24", "--label-column", "activity", "--epochs", "6",
                            "--qat-epochs", "1")
    assert report["dataset"]["input_shape"] == [48, 3] and report["dataset"]["classes"] == 3
    assert any("rewrote Conv1D" in c for c in report["int8_preparation"]["rewrites"])
    assert report["metrics"]["qat_int8_tflm"]["accuracy"] > 0.8
    pre = json.loads((run / "preprocessing.json").read_text())
    assert isinstance(pre["scale"], list) and len(pre["scale"]) == 3  # per-axis standardization


def test_image_folder_with_augmentation(tmp_path, digits):
    from PIL import Image

    root = tmp_path / "images"
    for label in (0, 1, 7):
        (root / f"digit{label}").mkdir(parents=True)
        for k, img in enumerate(digits.x_train[digits.y_train == label][:40]):
            Image.fromarray((img * 15).astype(np.uint8)).resize((16, 16)).save(
                root / f"digit{label}" / f"{k}.png")
    run, report, _ = _train(tmp_path, "--model", "lenet", "--dataset", root, "--image-size",
                            "16x16", "--augment", "shift=0.05", "--epochs", "8",
                            "--qat-epochs", "1")
    assert report["dataset"]["input_shape"] == [16, 16, 1]
    assert json.loads((run / "config.json").read_text())["augment"] == "shift=0.05"
    assert report["metrics"]["qat_int8_tflm"]["accuracy"] > 0.7


def test_wav_folder_keyword_spotting(tmp_path, rng):
    clips = {"yes": "yes_1000ms.wav", "no": "no_1000ms.wav", "noise": "noise_1000ms.wav"}
    root = tmp_path / "wav"
    for label, name in clips.items():
        with wave.open(str(shared("models", "testdata", "micro_speech", name))) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        (root / label).mkdir(parents=True)
        for k in range(30):  # shifted, noisy copies of the real clip
            clip = np.roll(pcm, int(rng.integers(-800, 800))).astype(np.float32)
            clip = np.clip(clip + rng.normal(0, 200, clip.shape), -32768, 32767).astype(np.int16)
            with wave.open(str(root / label / f"{k}.wav"), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16000)
                out.writeframes(clip.tobytes())
    run, report, _ = _train(tmp_path, "--model", "dscnn", "--dataset", root, "--epochs", "25",
                            "--patience", "25",
                            "--qat-epochs", "1")
    assert report["dataset"]["input_shape"] == [49, 10, 1]
    pre = json.loads((run / "preprocessing.json").read_text())
    assert pre["features"]["type"] == "mfcc" and pre["features"]["num_mfcc"] == 10
    assert report["metrics"]["qat_int8_tflm"]["accuracy"] >= 0.8


def test_autoencoder_anomaly_detection(tmp_path, rng):
    basis = rng.normal(size=(4, 32))
    normal = (rng.normal(size=(600, 4)) @ basis + rng.normal(0, 0.1, (600, 32)))
    anomalous = rng.normal(0, 2.0, (60, 32))
    x = np.concatenate([normal, anomalous]).astype(np.float32)
    y = np.concatenate([np.zeros(600, int), np.ones(60, int)])
    np.savez(tmp_path / "machine.npz", x=x, y=y)
    run, report, p = _train(tmp_path, "--model", "autoencoder", "--dataset",
                            tmp_path / "machine.npz", "--epochs", "15", "--qat-epochs", "2")
    assert report["task"] == "autoencoder" and report["ledger"]["metric"] == "auc"
    assert report["metrics"]["qat_int8_tflm"]["auc"] > 0.9
    assert "auc on the test set" in p.stdout
    # the operating point: chosen on validation from the scores the device computes
    threshold = report["threshold"]
    assert threshold["method"].startswith("best F1 on the validation split")
    assert threshold["test"]["recall"] > 0.8 and threshold["test"]["n"] == 66
    assert f"anomaly threshold: score > {threshold['value']:.6g}" in p.stdout
    assert f"Threshold: a score above {threshold['value']:.6g} is an anomaly" in (
        run / "report.md").read_text()
    v = run_cli("verify", run)
    assert v.returncode == 0 and "anomaly-detection AUC" in v.stdout
    # firmware scores anomalies instead of classifying, on every target
    from tflm_pipeline import firmware
    from tflm_pipeline.mcu.targets import targets

    # the selected QAT model has one scale per Dense layer; the PTQ candidate has
    # per-channel Dense weights, which old TFLM releases compute wrong: it is re-converted
    ptq = run / "model_ptq_int8.tflite"
    sources = {"arduino-nano33ble": ptq, "esp32": ptq, "platformio": ptq, "esp-idf": run}
    assert per_channel_dense_layers(read_model(ptq))
    for target, t in targets().items():
        source = sources.get(target, run)
        project = firmware(source, target, tmp_path / target).project
        code = project.out_dir / {"esp-idf": "main", "platformio": "src"}.get(target, "")
        runner = (code / "autoencoder_runner.h").read_text()
        assert "double AnomalyScore(const float* raw);" in runner and "Classify" not in runner
        settings = (code / "autoencoder_model_settings.h").read_text()
        if not [n for n in project.notes if n.startswith("anomaly threshold")
                and "re-chosen" in n]:  # the run's threshold
            stated = re.search(r"autoencoder_anomaly_threshold = (\S+);", settings).group(1)
            assert float(stated) == threshold["value"], target
        # B1: the per-tensor Dense re-conversion of old TFLM releases used to score every
        # model as a classifier and fail; it is scored with the run's task now
        model = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", (
            code / "autoencoder_model_data.cc").read_text().split("= {", 1)[1]))
        reconverted = [n for n in project.notes if "re-converted" in n
                       and not n.startswith("anomaly threshold")]
        if t.per_channel_dense or not per_channel_dense_layers(
                read_model(source if source.is_file() else source / "model_int8.tflite")):
            assert not reconverted, target
        else:
            assert len(reconverted) == 1 and " auc on the test set" in reconverted[0], target
            assert any(n.startswith("anomaly threshold") and "re-chosen for the re-converted"
                       in n for n in project.notes), target
            assert not per_channel_dense_layers(read_model(model)), target
        # B2: one arena figure per project, the target's, for the model it holds
        settings = (code / "autoencoder_model_settings.h").read_text()
        header = int(re.search(r"#define AUTOENCODER_ARENA_BYTES (\d+)", settings).group(1))
        stated = int(re.search(r"kArenaBytes = (\d+);", runner).group(1))
        assert header == stated == t.arena_for(read_model(model)).bytes, target

def test_autoencoder_on_normal_data_only(tmp_path, rng):
    """A recording without anomalies (Daphnet's are all label 0) has no AUC: the int8
    model is chosen by the reconstruction error on normal data and the threshold is the
    99% quantile; this used to end in a TypeError formatting the missing AUC."""
    basis = rng.normal(size=(4, 32))
    x = (rng.normal(size=(300, 4)) @ basis + rng.normal(0, 0.1, (300, 32))).astype(np.float32)
    np.savez(tmp_path / "normal.npz", x=x, y=np.zeros(300, int))
    run, report, p = _train(tmp_path, "--model", "autoencoder", "--dataset",
                            tmp_path / "normal.npz", "--epochs", "2", "--qat-epochs", "1")
    assert report["metrics"]["qat_int8_tflm"]["auc"] is None
    assert report["ledger"]["metric"] == "mse_normal" and report["ledger"]["drop_unit"] == "%"
    assert "validation mse_normal in TFLM" in report["metrics"]["selection"]
    assert report["threshold"]["method"].startswith("99% quantile")


def test_max_drop_fails_after_writing_the_run(tmp_path):
    run = tmp_path / "run"
    p = run_cli("train", "--epochs", "2", "--qat-epochs", "0", "--max-drop", "-100",
                "--out", run)
    assert p.returncode == 2
    errors = [line for line in p.stderr.splitlines() if "error" in line.lower()]
    assert errors == [p.stderr.strip().splitlines()[-1]] and "--max-drop -100" in errors[0]
    assert errors[0].startswith("tflmp: error:") and "Traceback" not in p.stderr
    assert (run / "report.json").exists() and (run / "model_int8.tflite").exists()


def test_basicmotions_imu_classification(tmp_path):
    # real smart-watch IMU windows (6 channels x 100 steps, 4 activities), .ts files
    run, report, _ = _train(tmp_path, "--model", "cnn1d", "--dataset",
                            shared("datasets", "timeseries", "basicmotions"),
                            "--epochs", "40", "--qat-epochs", "3")
    assert report["dataset"]["input_shape"] == [100, 6] and report["task"] == "classification"
    selected = report["metrics"]["selected"]
    assert report["metrics"]["float"]["accuracy"] >= 0.85
    assert report["metrics"][selected]["accuracy"] >= 0.85
    from tflm_pipeline import firmware  # ... and on to the board, with the class names

    project = firmware(run, "arduino-nano33ble", tmp_path / "fw").project
    header = next(project.out_dir.rglob("cnn1d_model_settings.h")).read_text()
    assert '"Standing",\n    "Running",\n    "Walking",\n    "Badminton",' in header


def test_covid3month_regression_end_to_end(tmp_path):
    # real series regression: the task comes from the data, the ledger is in MAE
    run, report, p = _train(tmp_path, "--model", "cnn1d", "--dataset",
                            shared("datasets", "timeseries", "covid3month"), "--epochs", "40",
                            "--qat-epochs", "2")
    assert report["task"] == "regression" and report["ledger"]["metric"] == "mae"
    assert report["ledger"]["drop_unit"] == "%"
    assert json.loads((run / "config.json").read_text())["task"] == "regression"
    m = report["metrics"]
    assert set(m["float"]) >= {"mae", "rmse", "r2", "n"}
    # better than always predicting the training mean (RMSE 0.0447 on this test set:
    # the dataset is hard, published models reach about 0.043), in Keras and in TFLM
    assert m["float"]["rmse"] < 0.0447 and m[m["selected"]]["rmse"] < 0.0447
    assert m["float"]["r2"] > 0 and m[m["selected"]]["r2"] > 0
    assert "change vs float in % of float's error" in p.stdout
    v = run_cli("verify", run)
    assert v.returncode == 0 and "TFLM MAE on Covid3Month test" in v.stdout
    from tflm_pipeline import firmware

    project = firmware(run, "esp-idf", tmp_path / "fw").project
    runner = (project.out_dir / "main" / "cnn1d_runner.h").read_text()
    assert "int Predict(const float* raw, float* values);" in runner
