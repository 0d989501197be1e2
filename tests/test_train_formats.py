"""`tflmp train` end to end on the data formats and tasks beyond the built-in sets:
sensor CSV windows, image folders, WAV folders, autoencoder anomaly detection, and the
--max-drop gate."""

import csv
import json
import wave

import numpy as np

from conftest import run_cli, shared


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
    v = run_cli("verify", run)
    assert v.returncode == 0 and "anomaly-detection AUC" in v.stdout
    # firmware scores anomalies instead of classifying
    from tflm_pipeline.codegen.project import generate

    project = generate(run, "esp-idf", tmp_path / "fw")
    runner = (project.out_dir / "main" / "autoencoder_runner.h").read_text()
    assert "float AnomalyScore(const float* raw);" in runner and "Classify" not in runner


def test_max_drop_fails_after_writing_the_run(tmp_path):
    run = tmp_path / "run"
    p = run_cli("train", "--epochs", "2", "--qat-epochs", "0", "--max-drop", "-100",
                "--out", run)
    assert p.returncode == 2
    errors = [line for line in p.stderr.splitlines() if "error" in line.lower()]
    assert errors == [p.stderr.strip().splitlines()[-1]] and "--max-drop -100" in errors[0]
    assert errors[0].startswith("tflmp: error:") and "Traceback" not in p.stderr
    assert (run / "report.json").exists() and (run / "model_int8.tflite").exists()
