"""``tflmp train --cv 3`` end to end on a small real dataset: a fold that fails stops the
run with the finished folds kept; ``--resume`` trains only the missing folds, then the
final model; report.json holds the per-fold block and the reports show its table."""

from __future__ import annotations

import json
import logging

import pytest

from tflm_pipeline.commands.train import train
from tflm_pipeline.config import RunConfig
from tflm_pipeline.cv.fold import FAIL_ENV
from tflm_pipeline.runs import RunFolder


@pytest.mark.slow
def test_cv_folds_resume_and_report(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="tflm_pipeline")
    out = tmp_path / "run"
    # no QAT: it would double the conversions (bench/cv.py runs the folds' QAT path)
    config = RunConfig(dataset="digits", subset=60, epochs=1, qat_epochs=0, cv=3,
                       max_drop=100.0, offline_plan=False, workers=1)
    monkeypatch.setenv(FAIL_ENV, "2")  # the interruption: fold 2 raises
    with pytest.raises(RuntimeError, match="fold 2 failed on purpose"):
        train(config, out)
    run = RunFolder(out)
    assert run.file(RunFolder.FOLDS).is_file()
    assert run.cv_fold(1).is_file() and not run.cv_fold(2).exists()
    before = {i: run.cv_fold(i).stat().st_mtime_ns for i in (1, 2, 3) if run.cv_fold(i).exists()}
    assert not run.has_record

    monkeypatch.delenv(FAIL_ENV)
    caplog.clear()
    result = train(resume=out)
    missing = [i for i in (1, 2, 3) if i not in before]
    trained = [r.getMessage() for r in caplog.records if "cross-validation: training" in
               r.getMessage()]
    assert trained == [f"cross-validation: training fold{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(map(str, missing))}, 1 at a time"]
    for i, mtime in before.items():  # finished folds are not trained again
        assert run.cv_fold(i).stat().st_mtime_ns == mtime

    cv = json.loads(run.file(RunFolder.REPORT).read_text())["cross_validation"]
    assert cv == result.record.cross_validation
    assert cv["k"] == 3 and cv["groups"] is None and cv["metric"] == "accuracy"
    assert cv["models"] == ["float", "ptq_int8_tflm", "selected_int8"]
    assert [f["fold"] for f in cv["folds"]] == [1, 2, 3]
    assert cv["resumed"] == sorted(before)
    held = sum(f["samples"]["held_out"] for f in cv["folds"])
    assert held == 120  # train + val of --subset 60, each held out once
    for key in cv["models"]:
        values = [f["scores"][key]["accuracy"] for f in cv["folds"]]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert cv["mean"][key]["accuracy"] == pytest.approx(sum(values) / 3, abs=1e-6)
        assert cv["std"][key]["accuracy"] >= 0.0
    assert not any(run.cv_scratch(i).exists() for i in (1, 2, 3))  # scratch removed
    md = run.file(RunFolder.REPORT_MD).read_text()
    assert "## Cross-validation (3 folds)" in md and "mean ± std" in md
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
    assert all(0.0 <= s["accuracy"] <= 1.0 and s["n"] == 60 for s in scores.values())
    assert set(row["phases"]) == {"float", "qat"} and row["phases"]["qat"]["epochs_run"] == 1
    assert "fold 2" in (tmp_path / "fold-2" / "fold.log").read_text()
