"""The commands as a user runs them, in child processes, on real data slices."""

import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_cli, shared


def test_train_writes_the_whole_run(digits_run):
    run, p = digits_run
    report = json.loads((run / "report.json").read_text())
    assert report["schema_version"] == 2
    assert report["dataset"] == {**report["dataset"], "name": "digits", "train": 1258,
                                 "val": 359, "test": 180}
    m = report["metrics"]
    for key in ("float", "qat_keras", "ptq_int8_tflm", "qat_int8_tflm"):
        assert 0.5 < m[key]["accuracy"] <= 1.0, key
        assert sum(map(sum, m[key]["confusion"])) == 180
    assert m["selected"] in ("ptq_int8_tflm", "qat_int8_tflm")
    selected = run / "model_int8.tflite"
    candidate = run / ("model_qat_int8.tflite" if m["selected"] == "qat_int8_tflm"
                       else "model_ptq_int8.tflite")
    assert selected.read_bytes() == candidate.read_bytes()
    model = report["model"]
    assert model["tflite_bytes"] == selected.stat().st_size
    assert model["params"] > 50_000 and model["arena_bytes"] > 1000
    assert "64-bit host" in model["arena_basis"]
    assert 0 < model["arena_32bit"]["arena_bytes"] < model["arena_bytes"]
    assert set(model["ops"]) >= {"CONV_2D", "FULLY_CONNECTED"}
    assert set(report["timings_s"]) >= {"train", "qat", "convert", "evaluate"}
    for name in ("history.csv", "history_qat.csv", "plots/training_curves.png",
                 "preprocessing.json", "float_best.h5", "qat_best_weights.h5"):
        assert (run / name).stat().st_size > 0, name
    assert list((run / "tensorboard" / "float").rglob("events.out.tfevents.*"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and "tensorflow" in manifest["packages"]
    assert manifest["artifacts"]["model_int8.tflite"]["sha256"] == model["sha256"]
    assert set(manifest["data_sha256"]) == {"train", "val", "test"}
    assert not (run / "checkpoints").exists()
    assert "selected" in p.stdout and "QAT int8 (TFLM)" in p.stdout


def test_convert_and_verify_a_run(digits_run, tmp_path):
    run, _ = digits_run
    p = run_cli("convert", run / "model_int8.tflite", "--c-array", "--name", "lenet",
                "--out", tmp_path / "c")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "c" / "lenet_model_data.cc").exists()
    p = run_cli("verify", run, "--out", tmp_path / "v.json")
    assert p.returncode == 0, p.stderr
    result = json.loads((tmp_path / "v.json").read_text())
    report = json.loads((run / "report.json").read_text())
    selected = report["metrics"]["selected"]
    # the harness reproduces the run's own TFLM figure on the same test split
    assert result["metrics"]["accuracy"] == report["metrics"][selected]["accuracy"]
    assert result["arena_bytes"] == report["model"]["arena_bytes"]
    assert "TFLM accuracy on digits test" in p.stdout


def test_convert_keras_h5_calibrates_on_the_runs_data(digits_run, tmp_path, capfd):
    # in this process, which loads TensorFlow once (a child spent ~5 s importing it)
    from tflm_pipeline.cli import main

    run, _ = digits_run
    assert main(["convert", str(run / "float_best.h5"), "--c-array", "--out",
                 str(tmp_path)]) == 0, capfd.readouterr().err
    from tflm_pipeline.tflite.model_info import read_model

    info = read_model(tmp_path / "lenet_int8.tflite")
    assert info.is_full_int8 and info.inputs[0].shape == (1, 8, 8, 1)
    assert (tmp_path / "lenet_model_data.h").exists()


@pytest.mark.slow  # converts two Keras models with the real converter
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_model_with_lambda_needs_trust(tmp_path, suffix, capfd):
    # the entry point in this process, which has TensorFlow loaded already (two child
    # processes spent ~10 s importing it); the conversion still runs in its own child
    from tflm_pipeline.cli import main
    from tflm_pipeline.tf_env import load

    _, keras, _ = load()
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, keras.layers.Dense(10)(x)).save(tmp_path / f"m{suffix}")
    capfd.readouterr()
    code = main(["convert", str(tmp_path / f"m{suffix}"), "--dataset", "digits", "--out",
                 str(tmp_path / "o")])
    err = capfd.readouterr().err
    assert code == 2 and "Lambda 'double'" in err and "--trust-model" in err
    assert err.strip().count("\n") == 0 and not (tmp_path / "o").exists()
    code = main(["convert", str(tmp_path / f"m{suffix}"), "--dataset", "digits", "--out",
                 str(tmp_path / "o"), "--trust-model"])
    assert code == 0, capfd.readouterr().err
    assert (tmp_path / "o" / "m_int8.tflite").is_file()


def test_verify_refuses_data_the_model_cannot_take(digits_run, tmp_path):
    run, _ = digits_run
    p = run_cli("verify", run / "model_int8.tflite", "--dataset", "mnist", "--data-dir",
                shared("datasets", "mnist"))
    assert p.returncode == 2, p.stderr
    assert "expects inputs of shape [8, 8, 1] but the data gives [28, 28, 1]" in p.stderr
    p = run_cli("verify", run, "--preprocessing", tmp_path / "none.json")
    assert p.returncode == 2 and "does not exist" in p.stderr


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, None])
def test_corrupt_models_give_one_line(tmp_path, hello_world_int8, content):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(hello_world_int8[:len(hello_world_int8) // 2] if content is None else content)
    for args in (["convert", bad, "--c-array", "--out", tmp_path / "o"],
                 ["verify", bad, "--dataset", "digits"]):
        p = run_cli(*args)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tflmp: error:"), p.stderr
        assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--resume", "/nonexistent/run"], "not a tflmp run folder"),
    (["convert", "missing.tflite", "--c-array"], "does not exist"),
    (["train", "--model", "cnn1d", "--epochs", "1"], "'cnn1d' (1-D CNN for time series and "
     "sensor windows) cannot take inputs of shape (8, 8, 1)"),
])
def test_user_mistakes_exit_2_with_one_line(tmp_path, args, message, capfd, monkeypatch):
    # in this process: the cnn1d case spent ~8 s importing TensorFlow in a child
    from tflm_pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    assert main(args) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines() == [err.strip()]
    assert message in err


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_last_epoch(tmp_path):
    run = tmp_path / "run"
    epochs = 14
    cmd = [sys.executable, "-m", "tflm_pipeline.cli", "train", "--epochs", str(epochs),
           "--qat-epochs", "1", "--patience", "100", "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "checkpoints" / "float" / "state.json"
    deadline = time.monotonic() + 300
    killed_after = None
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            epoch = json.loads(state.read_text())["epoch"]
            if epoch >= 2:
                proc.send_signal(signal.SIGKILL)
                killed_after = epoch
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_after is not None and killed_after < epochs - 1, "kill came too late"
    assert not (run / "report.json").exists()

    p = run_cli("train", "--resume", run)
    assert p.returncode == 0, p.stderr
    assert "resuming at epoch" in p.stdout
    with open(run / "history.csv") as f:
        epochs_logged = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs_logged == list(range(epochs))
    report = json.loads((run / "report.json").read_text())
    assert report["training"]["float"]["epochs_run"] == epochs
    # the same final metrics as the run that was never interrupted (within noise:
    # resumed shuffling and TensorFlow's threads are not bit-reproducible; two straight
    # runs of this command differed by up to 0.04 on a loaded machine)
    whole = tmp_path / "whole"
    p = run_cli(*cmd[3:-1], whole)
    assert p.returncode == 0, p.stderr
    uninterrupted = json.loads((whole / "report.json").read_text())
    for key in ("float", "qat_int8_tflm"):
        resumed, straight = (r["metrics"][key]["accuracy"] for r in (report, uninterrupted))
        assert resumed > 0.8 and abs(resumed - straight) <= 0.05, (key, resumed, straight)


def test_resume_refuses_changed_options(tmp_path):
    p = run_cli("train", "--resume", tmp_path, "--epochs", "3")
    assert p.returncode == 2 and "drop --epochs" in p.stderr


@pytest.mark.slow
def test_nan_loss_stops_with_the_last_good_checkpoint(tmp_path):
    # SGD at this rate overflows to NaN in the first epoch on digits (at 1e4 the loss only
    # grows huge: a finite divergence, which the doctor reports instead)
    run = tmp_path / "run"
    p = run_cli("train", "--epochs", "6", "--qat-epochs", "0", "--optimizer", "sgd",
                "--lr", "1e6", "--out", run)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()[-1]
    assert "became NaN" in err and "lower --lr" in err, p.stderr[-2000:]
    assert "Traceback" not in p.stderr


def test_a_run_that_fails_before_training_blocks_no_retry(tmp_path, capfd):
    # the entry point in this process: two child processes spent ~10 s importing TensorFlow
    from tflm_pipeline.cli import main

    # the model cannot take the data: the run fails before its first epoch
    run = tmp_path / "run"
    argv = ["train", "--model", "cnn1d", "--epochs", "1", "--out", str(run)]
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "cannot take inputs of shape" in err and err.strip().count("\n") == 0, err
    assert not run.exists()  # so a retry meets the same state: no "already holds a run"
    run.mkdir()  # a folder the user made stays, empty, and the retry says the same
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "cannot take inputs of shape" in err and err.strip().count("\n") == 0, err
    assert run.is_dir() and not list(run.iterdir())


@pytest.mark.slow
def test_a_run_works_from_any_directory(tmp_path, digits):
    import numpy as np

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    np.savez(here / "small.npz", x=digits.x_train[:400], y=digits.y_train[:400])
    p = run_cli("train", "--dataset", "small.npz", "--epochs", "2", "--qat-epochs", "0",
                "--max-drop", "100", "--out", "run", cwd=here)
    assert p.returncode == 0, p.stderr
    config = json.loads((here / "run" / "config.json").read_text())
    assert config["dataset"] == str(here / "small.npz")  # absolute
    p = run_cli("verify", here / "run", cwd=elsewhere)
    assert p.returncode == 0 and "TFLM accuracy on small test" in p.stdout, p.stderr
