"""Data you can trust: splits that work on any size, group-aware splits, timestamps in
sensor CSVs, and the data checks (duplicates, leaks, missing values, outliers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from tflm_pipeline.data.splits import plan_split
from tflm_pipeline.errors import TflmpError


def _digits_subset(per_class: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == c)[:per_class] for c in range(10)])
    return d.images.astype(np.uint8)[idx], d.target[idx].astype(np.int64)


# --- splits on any size ---------------------------------------------------------------

def test_small_dataset_keeps_every_class_in_every_split_and_says_how():
    _, y = _digits_subset(5)  # 50 samples, 10 classes
    plan = plan_split(y, (7, 2, 1), 0, "tiny")
    parts = plan.parts
    assert sorted(np.concatenate(parts).tolist()) == list(range(50))  # a partition
    for p in parts:
        assert set(y[p]) == set(range(10))
    assert [len(p) for p in parts] == [30, 10, 10]
    assert any("split per class instead" in n and "60%:20%:20%" in n for n in plan.notes)
    assert any("--cv" in n for n in plan.notes)  # 1 test sample per class means little
    # a train/val request (a dataset with its own test split) works the same way
    tr, va = plan_split(y, (0.9, 0.1), 0, "tiny").parts
    assert set(y[va]) == set(range(10)) and len(tr) == 40
    # classes too small for three splits are named, the others stay stratified
    y2 = np.r_[y, [10, 10]]
    plan = plan_split(y2, (7, 2, 1), 0, "tiny")
    assert any("class(es) 10 have too few samples to appear in test" in n for n in plan.notes)
    with pytest.raises(TflmpError, match="too few for 3 splits"):
        plan_split(y[:2], (7, 2, 1), 0, "tiny")


def test_large_dataset_split_is_unchanged_and_quiet():
    y = np.arange(1000) % 4
    plan = plan_split(y, (7, 2, 1), 0, "big")
    assert [len(p) for p in plan.parts] == [700, 200, 100] and plan.notes == []


@pytest.mark.slow
def test_train_on_50_samples_in_10_classes_and_no_folder_left_on_failure(tmp_path):
    x, y = _digits_subset(5)
    np.savez(tmp_path / "d50.npz", x=x, y=y)
    run = tmp_path / "runs" / "d50"
    p = run_cli("train", "--dataset", tmp_path / "d50.npz", "--epochs", "1", "--qat-epochs",
                "0", "--max-drop", "100", "--out", run)
    assert p.returncode == 0, p.stderr
    assert "split per class instead" in p.stderr and "--cv" in p.stderr
    rec = json.loads((run / "report.json").read_text())
    assert (rec["dataset"]["train"], rec["dataset"]["val"], rec["dataset"]["test"]) == (30, 10, 10)
    assert any("split per class instead" in n for n in rec["dataset"]["notes"])
    # a dataset too small to split fails in one line and leaves no folder behind
    np.savez(tmp_path / "d2.npz", x=x[:2], y=y[:2])
    p = run_cli("train", "--dataset", tmp_path / "d2.npz", "--epochs", "1", "--out",
                tmp_path / "new" / "deeper" / "run")
    assert p.returncode == 2 and "too few for 3 splits" in p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "new").exists()
