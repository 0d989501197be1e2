"""tf.distribute training: two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy)
reach the accuracy of one process on an MNIST slice; MirroredStrategy runs too."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli, shared
from tflm_pipeline.data import load_dataset

ARGS = ["--epochs", "3", "--qat-epochs", "1", "--batch-size", "64", "--seed", "0"]


@pytest.fixture(scope="module")
def mnist_slice(tmp_path_factory):
    ds = load_dataset("mnist", shared("datasets", "mnist"))
    path = tmp_path_factory.mktemp("data") / "mnist_slice.npz"
    np.savez(path, x_train=ds.x_train[:4000], y_train=ds.y_train[:4000],
             x_test=ds.x_test[:1000], y_test=ds.y_test[:1000])
    return path


@pytest.fixture(scope="module")
def single_run(mnist_slice, tmp_path_factory):
    run = tmp_path_factory.mktemp("single") / "run"
    p = run_cli("train", "--dataset", mnist_slice, *ARGS, "--out", run)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads((run / "report.json").read_text())


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_match_one_process(mnist_slice, single_run, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    run = tmp_path / "run"
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tflm_pipeline.cli", "train", "--strategy", "multi-worker",
             "--dataset", str(mnist_slice), *ARGS, "--out", str(run)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "multi-worker: worker 0 of 2 (2 replicas)" in outs[0][0]
    assert "worker 1: training done" in outs[1][0]
    report = json.loads((run / "report.json").read_text())
    assert json.loads((run / "config.json").read_text())["strategy"] == "multi-worker"
    for key in ("float", "qat_int8_tflm"):
        multi, one = report["metrics"][key]["accuracy"], single_run["metrics"][key]["accuracy"]
        assert multi > 0.85 and abs(multi - one) < 0.03, (key, multi, one)


@pytest.mark.slow
def test_mirrored_strategy_trains_and_quantizes(mnist_slice, single_run, tmp_path):
    run = tmp_path / "run"
    p = run_cli("train", "--strategy", "mirrored", "--dataset", mnist_slice, *ARGS, "--out", run)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert abs(report["metrics"]["qat_int8_tflm"]["accuracy"]
               - single_run["metrics"]["qat_int8_tflm"]["accuracy"]) < 0.03


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs TF_CONFIG"),
    ("{not json", "TF_CONFIG is not valid"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "is not in its cluster"),
])
def test_bad_tf_config_is_one_line(tmp_path, tf_config, message):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    p = subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", "train", "--strategy",
                        "multi-worker", "--out", str(tmp_path / "r")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
