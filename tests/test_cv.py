"""``tflmp train --cv 3`` end to end on a small real dataset: the CLI killed (SIGKILL)
after its first fold keeps that fold; ``--resume`` trains only the missing folds, then
the final model; report.json holds the per-fold block and the reports show its table."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, shared
from tflm_pipeline.commands.train import train
from tflm_pipeline.config import RunConfig
from tflm_pipeline.runs import RunFolder


def _kill_after_first_fold(cmd: list[str], run: RunFolder, log_path, timeout=300) -> None:
    """Run ``cmd`` in its own process group and SIGKILL the group (the CLI, its fold
    processes and their TFLM children) as soon as ``cv/fold-1.json`` exists."""
    with open(log_path, "w") as log:
        child = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not run.cv_fold(1).is_file():
            if child.poll() is not None:
                pytest.fail(f"tflmp train ended ({child.returncode}) before fold 1 was "
                            f"recorded:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no fold recorded in {timeout} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


@pytest.mark.slow
def test_cv_killed_after_one_fold_resumes_the_missing_folds(tmp_path, caplog):
    """BasicMotions (.ts, standardized per channel): each fold's standardization is fitted
    on its own training part; the interrupted run resumes fold by fold."""
    caplog.set_level(logging.INFO, logger="tflm_pipeline")
    out = tmp_path / "run"
    run = RunFolder(out)
    # no QAT: it would double the conversions (test_one_fold_trains_float_ptq_and_qat runs it)
    _kill_after_first_fold(
        [sys.executable, "-m", "tflm_pipeline.cli", "train", "--model", "cnn1d",
         "--dataset", str(shared("datasets", "timeseries", "basicmotions")), "--epochs", "1",
         "--qat-epochs", "0", "--cv", "3", "--cv-jobs", "1", "--max-drop", "100",
         "--no-offline-plan", "--workers", "1", "--out", str(out)], run, tmp_path / "cli.log")
    assert run.file(RunFolder.FOLDS).is_file() and not run.has_record
    assert run.cv_fold(1).is_file() and not run.cv_fold(2).exists()
    fold_1 = run.cv_fold(1).read_bytes()
    mtime = run.cv_fold(1).stat().st_mtime_ns

    caplog.clear()
    result = train(resume=out)
    trained = [r.getMessage() for r in caplog.records if "cross-validation: training" in
               r.getMessage()]
    assert trained == ["cross-validation: training folds 2, 3, 1 at a time"]
    # fold 1 is not trained again
    assert run.cv_fold(1).read_bytes() == fold_1 and run.cv_fold(1).stat().st_mtime_ns == mtime

    cv = json.loads(run.file(RunFolder.REPORT).read_text())["cross_validation"]
    assert cv == result.record.cross_validation
    assert cv["resumed"] == [1]
    assert cv["k"] == 3 and cv["groups"] is None and cv["metric"] == "accuracy"
    assert cv["preprocessing"] == "per fold"
    assert cv["models"] == ["float", "ptq_int8_tflm", "selected_int8"]
    assert [f["fold"] for f in cv["folds"]] == [1, 2, 3]
    assert cv["folds"][0] == json.loads(fold_1)
    pool = result.record.dataset.train + result.record.dataset.val
    assert sum(f["samples"]["held_out"] for f in cv["folds"]) == pool  # each held out once
    for key in cv["models"]:
        values = [f["scores"][key]["accuracy"] for f in cv["folds"]]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert cv["mean"][key]["accuracy"] == pytest.approx(sum(values) / 3, abs=1e-6)
        assert cv["std"][key]["accuracy"] >= 0.0
    assert not any(run.cv_scratch(i).exists() for i in (1, 2, 3))  # scratch removed
    md = run.file(RunFolder.REPORT_MD).read_text()
    assert "## Cross-validation (3 folds)" in md and "mean ± std" in md
    assert "standardization fitted on it" in md
    assert 'id="cv-table"' in run.file(RunFolder.REPORT_HTML).read_text()


@pytest.mark.slow
def test_one_fold_trains_float_ptq_and_qat(tmp_path):
    """The fold recipe itself (in this process): float, PTQ int8 and QAT int8 scored on
    the held-out part, the int8 choice made on the fold's validation part."""
    from tflm_pipeline.cv.fold import FoldJob, run_fold
    from tflm_pipeline.data import DataSpec, load_dataset

    config = RunConfig(dataset="digits", subset=60, epochs=2, qat_epochs=1)
    ds = load_dataset(DataSpec.of(config))
    parts = {"train": ds.raw("train"), "val": ds.raw("val"), "held_out": ds.raw("test")}
    row = run_fold(FoldJob(2, config.to_dict(), "classification", ds.preprocessing, parts,
                           batch=16, lr=2e-3, scratch=str(tmp_path / "fold-2"), tf_threads=None,
                           tflm_workers=1))
    assert row["fold"] == 2 and row["samples"] == {"train": 60, "val": 60, "held_out": 60}
    scores = row["scores"]
    assert set(scores) == {"float", "ptq_int8_tflm", "qat_int8_tflm", "selected_int8"}
    assert row["selected"] in ("ptq_int8_tflm", "qat_int8_tflm")
    assert scores["selected_int8"] == scores[row["selected"]]
    # the run's rule: the better validation accuracy in TFLM, a tie to QAT
    val = {k: scores[k]["val_accuracy"] for k in ("ptq_int8_tflm", "qat_int8_tflm")}
    assert row["selected"] == ("qat_int8_tflm" if val["qat_int8_tflm"] >= val["ptq_int8_tflm"]
                               else "ptq_int8_tflm")
    assert all(0.0 <= s["accuracy"] <= 1.0 and s["n"] == 60 for s in scores.values())
    assert set(row["phases"]) == {"float", "qat"} and row["phases"]["qat"]["epochs_run"] == 1
    assert "fold 2" in (tmp_path / "fold-2" / "fold.log").read_text()
