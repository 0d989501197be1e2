"""``tflmp doctor``, ``--lr auto`` and ``--schedule``.

Fast: each rule of reports/diagnose.py fires on the files of a real run
(tests/doctor/healthy, see its README) edited to show its condition, and on the
unedited run none fires; the range test's choice, the schedules' curves, the CLI.
Slow: real digits runs with a learning rate that blows up, one too low to move, a
``--lr auto`` run killed and resumed (the sweep is not redone) that the doctor passes,
and a schedule picked up mid-run (as --resume does) on its curve.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from tflm_pipeline.reports.diagnose import (EXPLODE_OVER_CHANCE, OVERFIT_GAP, Finding,
                                            diagnose)
from tflm_pipeline.runs import RunFolder
from tflm_pipeline.training.schedule import LrSchedule

HEALTHY = Path(__file__).parent / "doctor" / "healthy"


# --- the real run's files, edited ---------------------------------------------------------

@pytest.fixture
def run(tmp_path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(HEALTHY, path)
    return path


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _edit_history(run: Path, edit, name="history.csv") -> None:
    rows = _rows(run / name)
    for i, row in enumerate(rows):
        edit(i, row)
    with open(run / name, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _edit_json(run: Path, name: str, edit) -> None:
    data = json.loads((run / name).read_text())
    edit(data)
    (run / name).write_text(json.dumps(data))


def _codes(run: Path) -> dict[str, Finding]:
    return {f.code: f for f in diagnose(RunFolder(run))}


def test_healthy_run_has_no_findings(run):
    from tflm_pipeline import doctor  # the API: a typed result

    assert diagnose(RunFolder(run)) == []
    result = doctor(run)
    assert result.healthy and result.finished and result.to_dict()["findings"] == []


def test_nan_loss(run):
    _edit_history(run, lambda i, r: r.update(loss="nan") if i == 6 else None)
    f = _codes(run)["nan_loss"]
    assert f.severity == "error" and "epoch 7" in f.evidence and "--lr 0.0002" in f.remedy


def test_diverging_blow_up_and_rise(run):
    chance = math.log(10)
    _edit_history(run, lambda i, r: r.update(loss=str(EXPLODE_OVER_CHANCE * chance * 2))
                  if i == 0 else None)
    f = _codes(run)["diverging"]
    assert "epoch 1" in f.evidence and "chance level" in f.evidence and "--lr auto" in f.remedy
    shutil.copy(HEALTHY / "history.csv", run / "history.csv")
    _edit_history(run, lambda i, r: r.update(loss=str(0.15 + 0.1 * max(0, i - 10))))
    f = _codes(run)["diverging"]
    assert "rose from 0.15 at epoch" in f.evidence and "0.55 at epoch 15" in f.evidence


def test_flat_loss(run):
    _edit_history(run, lambda i, r: r.update(loss=str(2.30 - 0.001 * i), accuracy="0.1"))
    f = _codes(run)["flat_loss"]
    assert f.severity == "error" and "chance level" in f.evidence
    assert "underfitting" not in _codes(run)  # one cause, said once


def test_overfitting(run):
    # val_loss turns up after epoch 10 while the training loss keeps falling
    _edit_history(run, lambda i, r: r.update(val_loss=str(0.2 + 0.05 * max(0, i - 9))))
    f = _codes(run)["overfitting"]
    assert "val_loss rose from 0.2 at epoch 10 to 0.45 at epoch 15 while loss fell" in f.evidence
    assert "--augment shift=0.1,rotate=10" in f.remedy
    shutil.copy(HEALTHY / "history.csv", run / "history.csv")
    _edit_history(run, lambda i, r: r.update(val_accuracy=str(float(r["accuracy"])
                                                              - 2 * OVERFIT_GAP)))
    assert "points apart" in _codes(run)["overfitting"].evidence
    # one noisy epoch at the end is not overfitting (as in a real 3-epoch MNIST run)
    shutil.copy(HEALTHY / "history.csv", run / "history.csv")
    _edit_history(run, lambda i, r: r.update(val_loss="0.3") if i == 14 else None)
    assert "overfitting" not in _codes(run)


def test_underfitting_and_still_improving(run):
    _edit_history(run, lambda i, r: r.update(accuracy=str(0.5 + 0.01 * i),
                                             val_accuracy=str(0.5 + 0.02 * i)))
    f = _codes(run)["underfitting"]
    assert "both below 0.90" in f.evidence and "--epochs 30" in f.remedy
    assert "still improving" in f.remedy
    shutil.copy(HEALTHY / "history.csv", run / "history.csv")
    _edit_history(run, lambda i, r: r.update(val_accuracy=str(0.80 + 0.01 * i)))
    f = _codes(run)["still_improving"]
    assert f.severity == "info" and "--epochs 30" in f.remedy


def test_early_stopping_at_the_first_epochs(run):
    _edit_json(run, "stages.json", lambda d: d["float"].update(
        epochs_run=10, best_epoch=2, stopped_early=True))
    f = _codes(run)["early_stop"]
    assert "ended training at epoch 10 of 15" in f.evidence and "epoch 2" in f.evidence
    assert "--lr 0.00067" in f.remedy


def test_int8_drop_names_the_worst_layer(run):
    def drop(d):
        d["ledger"]["qat_int8_tflm"].update(accuracy=0.90, drop_pp=3.89)
    _edit_json(run, "report.json", drop)
    f = _codes(run)["int8_drop"]
    assert "3.89 points lost, more than --max-drop 1" in f.evidence
    # the largest per-layer error of the real ladder, past the fixed-scale softmax
    rows = json.loads((run / "report.json").read_text())["per_layer_error"]
    worst = max((r for r in rows if r["op"] != "SOFTMAX"), key=lambda r: r["rmse_over_scale"])
    assert f"layer {worst['layer']} ({worst['op']}) has the largest" in f.evidence
    assert "--qat-epochs 2" in f.remedy and "ReLU6" in f.remedy
    _edit_json(run, "report.json", lambda d: d.pop("per_layer_error"))
    assert "--ladder" in _codes(run)["int8_drop"].remedy


def test_class_never_predicted(run):
    def lose_class_3(d):
        for row in d["metrics"]["qat_int8_tflm"]["confusion"]:
            row[5] += row[3]
            row[3] = 0
    _edit_json(run, "report.json", lose_class_3)
    f = _codes(run)["class_never_predicted"]
    assert "never predicts class 3 (" in f.evidence and "float predicts 3" in f.evidence
    assert "--qat-epochs" in f.remedy


def test_data_checks_are_passed_on_when_present(run):
    # the layout of data.checks.DataChecks.to_dict() (issue 14)
    checks = {"samples": {"train": 1258, "val": 359, "test": 180},
              "class_counts": {"train": [120, 130, 12, 125, 130, 127, 130, 124, 130, 130]},
              "imbalance_ratio": 10.8, "duplicates_within": {}, "label_conflicts": 0,
              "duplicates_across": {"train/test": 3}, "near_duplicates_across": {},
              "missing": {}, "constant_channels": [],
              "leaks": ["3 test sample(s) are exact copies of train samples: kept"]}
    _edit_json(run, "report.json", lambda d: d.update(data_checks=checks))
    found = _codes(run)
    assert found["data:leak"].evidence.startswith("3 test sample(s) are exact copies")
    assert "10.8x" in found["data:imbalance"].evidence
    assert "--class-weight auto" in found["data:imbalance"].remedy
    assert "data:missing" not in found and "data:label_conflicts" not in found
    def lose_class_2(d):  # float and int8 both miss the rare class
        for key in ("float", "qat_int8_tflm"):
            for row in d["metrics"][key]["confusion"]:
                row[5] += row[2]
                row[2] = 0
    _edit_json(run, "report.json", lose_class_2)
    assert "training samples: 2 12" in _codes(run)["class_never_predicted"].evidence


def test_cli_doctor(run, tmp_path, capsys):
    from tflm_pipeline.cli import main

    p = run_cli("doctor", run)  # the real entry point
    assert p.returncode == 0 and "no problems found" in p.stdout, p.stderr
    _edit_history(run, lambda i, r: r.update(loss="nan") if i == 3 else None)
    out = tmp_path / "doctor.json"
    assert main(["doctor", str(run), "--out", str(out)]) == 0  # findings: still 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "nan_loss" in ln)
    assert "epoch 4" in line and "--lr" in line
    assert json.loads(out.read_text())["findings"][0]["code"] == "nan_loss"
    assert main(["doctor", str(tmp_path)]) == 2  # not a run
    assert "not a tflmp run folder" in capsys.readouterr().err
    for name in ("history.csv", "history_qat.csv"):
        (run / name).unlink()
    assert main(["doctor", str(run)]) == 2
    assert "no training history" in capsys.readouterr().err


# --- the range test and the schedules ---------------------------------------------------------

def test_range_test_chooses_a_tenth_of_the_minimum():
    from tflm_pipeline.training.lr_range import choose

    lrs = [1e-6 * 10 ** (k / 10) for k in range(61)]  # 1e-6 .. 1
    # loss falls steeply around 1e-3, is lowest at 1e-2, and blows up after it
    loss = [2.3 - 2.0 / (1 + math.exp(-4 * (math.log10(lr) + 3))) + max(0, math.log10(lr) + 2)
            ** 2 * 5 for lr in lrs]
    chosen, low, steepest, reason = choose(lrs, loss)
    assert low == pytest.approx(1e-2, rel=0.3) and chosen == pytest.approx(low / 10)
    assert steepest == pytest.approx(1e-3, rel=0.3) and "one order of magnitude" in reason


def test_schedules():
    total = 100
    one = [LrSchedule("onecycle", 1e-2).lr(s, total) for s in range(total)]
    assert one[0] == pytest.approx(1e-2 / 25) and max(one) == pytest.approx(1e-2, rel=0.02)
    assert one.index(max(one)) == pytest.approx(25, abs=1) and one[-1] == pytest.approx(1e-5)
    cos = [LrSchedule("cosine", 1e-2).lr(s, total) for s in range(total)]
    assert cos[0] == 1e-2 and all(a >= b for a, b in zip(cos, cos[1:]))
    assert LrSchedule("constant", 3e-3).lr(57, total) == 3e-3


def test_lr_and_schedule_options_are_checked(capsys):
    from tflm_pipeline.config import RunConfig
    from tflm_pipeline.errors import TflmpError

    RunConfig(lr="auto", schedule="onecycle").validate()
    with pytest.raises(TflmpError, match="--schedule must be one of"):
        RunConfig(schedule="step").validate()
    from tflm_pipeline.cli import main

    assert main(["train", "--lr", "fast"]) == 2
    assert "neither a number nor 'auto'" in capsys.readouterr().err


# --- real runs --------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_runs_with_a_bad_learning_rate(tmp_path):
    """Too high a rate blows up, too low a rate stays flat; train prints the finding and
    records it, and the doctor says the same."""
    for lr, code, words in (("0.5", "diverging", "too high"), ("1e-7", "flat_loss", "too low")):
        out = tmp_path / code
        p = run_cli("train", "--epochs", "2", "--qat-epochs", "0", "--lr", lr,
                    "--max-drop", "100", "--out", out)
        assert p.returncode == 0, p.stderr[-2000:]
        assert f"error {code}: learning rate {lr.replace('1e-7', '1e-07')} {words}" in p.stdout
        diagnosis = json.loads((out / "report.json").read_text())["diagnosis"]
        assert diagnosis[0]["code"] == code
        d = run_cli("doctor", out)
        assert d.returncode == 0 and f"error {code}" in d.stdout


@pytest.mark.slow
def test_lr_auto_resumes_without_a_new_sweep(tmp_path):
    """A ``--lr auto`` run killed after its sweep and first epochs resumes at the recorded
    rate; the finished run is healthy for the doctor."""
    out = tmp_path / "auto"
    cmd = [sys.executable, "-m", "tflm_pipeline.cli", "train", "--lr", "auto", "--epochs", "12",
           "--qat-epochs", "1", "--out", str(out)]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoints" / "float" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 1:
            break
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert state.is_file(), "the run ended before it could be killed"
    sweep = (out / "lr_range.json").read_bytes()
    chosen = json.loads(sweep)["chosen"]
    assert (out / "plots" / "lr_range.png").is_file()
    from tflm_pipeline import doctor

    assert not doctor(out).finished  # an interrupted run: diagnosed from its histories

    p = run_cli("train", "--resume", out)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "lr range test" not in p.stdout and "resuming at epoch" in p.stdout
    assert (out / "lr_range.json").read_bytes() == sweep
    rec = json.loads((out / "report.json").read_text())
    assert rec["lr_range"]["chosen"] == chosen == rec["training"]["lr"]
    assert rec["lr_range"]["rule"] == "minimum / 10"
    assert f"--lr auto: {chosen:.3g}" in p.stdout
    assert not [f for f in rec["diagnosis"] if f["severity"] != "info"], rec["diagnosis"]


ONECYCLE = LrSchedule("onecycle", 1e-2)


def _fit_tiny(folder, rate, epochs, seen, *, units=2):
    """fit() of a two-Dense model on 64 fixed samples (4 steps an epoch) under a one-cycle
    schedule of 16 steps, its checkpoints in ``folder / "ckpt"``; the optimizer's rate at
    every step is appended to ``seen``."""
    import numpy as np

    from tflm_pipeline.tf_env import load
    from tflm_pipeline.training.fit import fit
    from tflm_pipeline.training.keras_io import save_weights

    _, keras, _ = load()

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):  # the rate the step just used
            seen.append(float(keras.backend.get_value(self.model.optimizer.learning_rate)))

    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(units),
                              keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(rate), "mse")
    rng = np.random.default_rng(0)
    data = (rng.random((64, 4), np.float32), rng.random((64, 2), np.float32))
    fit(model, data, data, phase_dir=folder / "ckpt", history_csv=folder / "h.csv",
        best_path=folder / "best.h5", save_best=save_weights, epochs=epochs, batch_size=16,
        patience=10, seed=0, monitor="val_loss", mode="min", schedule=ONECYCLE,
        callbacks=[Record()])


@pytest.mark.slow
def test_a_resumed_schedule_continues_on_its_curve(tmp_path):
    """fit() stopped after 2 of 4 epochs and resumed from its checkpoint (as --resume
    does) trains the last 2 epochs at the rates of global steps 8-15; the history's lr
    column is the rate of each epoch's last step."""
    from tflm_pipeline.training.fit import read_history

    seen = []
    _fit_tiny(tmp_path, ONECYCLE.keras_rate(16), 2, seen)
    assert seen == pytest.approx([ONECYCLE.lr(step, 16) for step in range(8)], rel=1e-5)
    seen.clear()
    # a fresh model and optimizer: the step count comes from the checkpoint
    _fit_tiny(tmp_path, ONECYCLE.keras_rate(16), 4, seen)
    assert seen == pytest.approx([ONECYCLE.lr(step, 16) for step in range(8, 16)], rel=1e-5)
    lrs = [row["lr"] for row in read_history(tmp_path / "h.csv")]
    assert lrs == pytest.approx([ONECYCLE.lr(4 * e + 3, 16) for e in range(4)], rel=1e-5)


@pytest.mark.slow
def test_a_checkpoint_without_the_rate_variable_resumes_and_a_foreign_one_is_one_line(tmp_path):
    """A checkpoint from before the schedule moved into the optimizer (a plain rate
    variable, no current-rate variable) resumes on the curve; one of another model is a
    TflmpError naming the folder to delete."""
    from tflm_pipeline.errors import TflmpError

    seen = []
    _fit_tiny(tmp_path, 1e-3, 2, seen)  # the old way: a rate variable a callback used to set
    seen.clear()
    _fit_tiny(tmp_path, ONECYCLE.keras_rate(16), 4, seen)
    assert seen == pytest.approx([ONECYCLE.lr(step, 16) for step in range(8, 16)], rel=1e-5)

    other = tmp_path / "other"
    _fit_tiny(other, ONECYCLE.keras_rate(16), 1, seen)
    with pytest.raises(TflmpError, match=r"does not match this model and optimizer.*delete"):
        _fit_tiny(other, ONECYCLE.keras_rate(16), 4, seen, units=3)
