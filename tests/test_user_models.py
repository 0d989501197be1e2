"""Your own model through the whole chain: a Python builder, a saved Keras model
fine-tuned with --freeze and a new head, an LSTM, Keras 3 files; and one clear line for
what cannot reach TFLM."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run_cli
from tflm_shim import write_shim

MODELS = REPO / "tests" / "user_models"


def _train(tmp_path, *args, name="run"):
    run = tmp_path / name
    p = run_cli("train", "--out", run, "--max-drop", "100", *args)
    assert p.returncode == 0, p.stderr
    return run, json.loads((run / "report.json").read_text()), p


def _cli_in_process(capfd, *args) -> tuple[int, str]:
    """The entry point python -m tflm_pipeline.cli runs, called in this process (which
    has TensorFlow loaded once, instead of each child process importing it): exit code
    and stderr."""
    from tflm_pipeline.cli import main

    capfd.readouterr()
    code = main([str(a) for a in args])
    return code, capfd.readouterr().err


def _firmware_compiles(run, tmp_path, target="esp-idf"):
    """The run's firmware project with every source compiled: main against the board's
    API, runner and model against the TFLM API of the target's release."""
    from tflm_pipeline import firmware
    from tflm_pipeline.mcu.build_check import compile_board_main
    from tflm_pipeline.mcu.releases import get_release
    from tflm_pipeline.mcu.targets import get_target

    project = firmware(run, target, tmp_path / f"fw_{target.replace('-', '_')}").project
    code = project.out_dir / {"esp-idf": "main", "platformio": "src"}.get(target, "")
    main = compile_board_main(project.out_dir, target, code)
    assert main.passed, main.output
    shim = write_shim(tmp_path / "shim", get_release(get_target(target).releases[0]).op_set)
    for src in (code / f"{project.name}_runner.cc", code / f"{project.name}_model_data.cc"):
        subprocess.run(["g++", "-std=c++11", "-fsyntax-only", "-Wall", "-Werror",
                        "-DTFLMP_CHECK", "-I", str(code), "-I", str(shim), str(src)], check=True)
    return project


@pytest.mark.slow
def test_python_builder_then_fine_tuned_h5_with_a_new_head(tmp_path):
    run, report, _ = _train(tmp_path, "--model", MODELS / "cnn_bn.py", "--epochs", "5",
                            "--qat-epochs", "1")
    assert json.loads((run / "config.json").read_text())["model"] == str(MODELS / "cnn_bn.py")
    assert report["model"]["name"] == "cnn_bn"
    assert "folded BatchNormalization 'bn' into 'conv'" in report["int8_preparation"]["rewrites"]
    assert report["metrics"][report["metrics"]["selected"]]["accuracy"] > 0.8
    _firmware_compiles(run, tmp_path)
    # transfer learning: the trained .h5 on three classes, its first layer frozen
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, [0, 1, 7])
    np.savez(tmp_path / "three.npz", x=d.images[keep].astype(np.uint8),
             y=np.searchsorted([0, 1, 7], d.target[keep]), labels=np.array(["0", "1", "7"]))
    tuned, report, p = _train(tmp_path, "--model", run / "float_best.h5", "--freeze",
                              "up-to-conv", "--dataset", tmp_path / "three.npz", "--epochs", "3",
                              "--qat-epochs", "1", name="tuned")
    assert "new head 'head_new' (3 outputs) in place of 'head' (10)" in p.stdout
    assert "1 of 8 layers frozen" in p.stdout
    assert report["dataset"]["classes"] == 3
    assert report["model"]["name"] == "cnn_bn"  # the run's model, not its "float_best.h5"
    assert report["metrics"][report["metrics"]["selected"]]["accuracy"] > 0.9
    assert _firmware_compiles(tuned, tmp_path, "arduino-nano33ble").name == "cnn_bn"


@pytest.mark.slow
def test_lstm_reaches_tflm_as_a_sequence_lstm_op(tmp_path):
    run, report, _ = _train(tmp_path, "--model", f"{MODELS / 'rnn.py'}:lstm", "--epochs", "8",
                            "--qat-epochs", "1")
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in report["model"]["ops"]
    floats = {f["layer"]: f["reason"] for f in report["int8_preparation"]["float_during_qat"]}
    assert "no 8-bit QAT scheme for LSTM" in floats["lstm"]  # trained float, quantized after
    assert report["metrics"][report["metrics"]["selected"]]["accuracy"] > 0.6
    _firmware_compiles(run, tmp_path)


@pytest.mark.slow
def test_keras3_files_rebuilt_or_post_trained(tmp_path, capfd):
    subprocess.run([sys.executable, MODELS / "make_keras3.py", tmp_path], check=True,
                   capture_output=True)
    run, report, p = _train(tmp_path, "--model", tmp_path / "keras3_cnn.keras", "--epochs", "2",
                            "--qat-epochs", "1")
    assert "rebuilt from Keras 3" in p.stdout and "same outputs" in p.stdout
    assert report["metrics"]["qat_int8_tflm"]["accuracy"] > 0.8  # QAT ran on the rebuild
    _firmware_compiles(run, tmp_path, "platformio")
    # a layer tf_keras lacks: one line with the route that works, which works
    code, err = _cli_in_process(capfd, "train", "--model", tmp_path / "keras3_rms.keras",
                                "--out", tmp_path / "x")
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "RMSNormalization" in err and "tflmp convert" in err
    assert not (tmp_path / "x").exists()
    out = tmp_path / "rms"
    code, err = _cli_in_process(capfd, "convert", tmp_path / "keras3_rms.keras", "--dataset",
                                "digits", "--out", out)
    assert code == 0, err
    v = run_cli("verify", out / "keras3_rms_int8.tflite", "--dataset", "digits")
    assert v.returncode == 0 and float(v.stdout.split("test: ")[1].split()[0]) > 0.7


def test_gru_is_one_line_before_training(tmp_path, capfd):
    code, err = _cli_in_process(capfd, "train", "--model", f"{MODELS / 'rnn.py'}:gru",
                                "--epochs", "1", "--out", tmp_path / "run")
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "layer 'gru' (GRU)" in err and "unroll=True" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model, message", [
    ("nope.py", "model file nope.py does not exist"),
    (str(MODELS / "rnn.py:missing"), "has no function missing"),
    ("weights.npz", "is not a model tflmp can train"),
    ("resnet99", "unknown model 'resnet99'"),
])
def test_model_mistakes_are_one_line(tmp_path, model, message, capfd, monkeypatch):
    (tmp_path / "weights.npz").write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # relative model paths, as a user types them
    code, err = _cli_in_process(capfd, "train", "--model", model, "--epochs", "1",
                                "--out", tmp_path / "run")
    assert code == 2 and message in err, err
    assert err.strip().count("\n") == 0
