"""Cross-validation fold planning (data.folds) and the pieces of --cv that need no
training: stratified folds, groups never on both sides of a fold, one-line errors when K
is too large, the small-test-split warning, the summary and the report section."""

from __future__ import annotations

import numpy as np
import pytest

from tflm_pipeline.config import RunConfig
from tflm_pipeline.cv.stage import choose_jobs, summarize
from tflm_pipeline.data.folds import plan_folds, small_test_split
from tflm_pipeline.errors import TflmpError


def _check_partition(plan, n):
    held = np.concatenate([f.held_out for f in plan.folds])
    assert sorted(held.tolist()) == list(range(n))  # every sample held out exactly once
    for f in plan.folds:
        parts = [set(f.train.tolist()), set(f.val.tolist()), set(f.held_out.tolist())]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert len(f.train) + len(f.val) + len(f.held_out) == n


def test_folds_are_stratified_and_cover_the_pool():
    y = np.repeat(np.arange(4), 10)  # BasicMotions' 40 cases, 4 classes
    plan = plan_folds(y, 5, seed=0, val_fraction=0.25)
    _check_partition(plan, len(y))
    assert plan.k == 5 and not plan.grouped and plan.method == "StratifiedKFold"
    for f in plan.folds:  # 2 of each class held out per fold, every class in train and val
        assert np.bincount(y[f.held_out], minlength=4).tolist() == [2, 2, 2, 2]
        assert set(y[f.train]) == set(y[f.val]) == {0, 1, 2, 3}
    again = plan_folds(y, 5, seed=0, val_fraction=0.25)
    assert all((a.held_out == b.held_out).all() for a, b in zip(plan.folds, again.folds))
    doc = plan.to_dict([f"case{i}" for i in range(40)], "case")
    assert len(doc["folds"]) == 5 and doc["folds"][0]["held_out"][0].startswith("case")


def test_groups_never_on_both_sides_of_a_fold():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"s{i}" for i in range(8)], 12)
    y = rng.integers(0, 3, len(groups))
    plan = plan_folds(y, 4, seed=1, val_fraction=0.2, groups=groups)
    _check_partition(plan, len(y))
    assert plan.grouped and "StratifiedGroupKFold" in plan.method
    for f in plan.folds:
        held = set(groups[f.held_out])
        assert not held & set(groups[f.train]) and not held & set(groups[f.val])
        assert not set(groups[f.train]) & set(groups[f.val])  # the inner split too


@pytest.mark.parametrize("y, k, groups, says", [
    (np.repeat(np.arange(3), [10, 10, 3]), 5, None, "class 2 has 3 train+val sample(s)"),
    (np.repeat(np.arange(2), 10), 5, np.repeat(["a", "b", "c"], [7, 7, 6]), "3 group(s)"),
    (np.arange(4), 6, None, "more folds than the 4"),
    (np.arange(10), 1, None, "2 or more"),
])
def test_k_too_large_is_one_line_with_the_fix(y, k, groups, says):
    with pytest.raises(TflmpError) as e:
        plan_folds(y, k, seed=0, val_fraction=0.2, groups=groups)
    message = str(e.value)
    assert says in message and "\n" not in message and "--cv" in message


def test_regression_targets_fold_without_strata():
    y = np.linspace(0, 1, 30, dtype=np.float32)
    plan = plan_folds(y, 3, seed=0, val_fraction=0.2)
    _check_partition(plan, 30)
    assert plan.method == "KFold"


def test_config_checks_cv_options():
    for bad, says in ((dict(cv=1), "--cv must be 2"), (dict(cv=3, cv_jobs=0), "--cv-jobs"),
                      (dict(cv=3, lr="auto"), "--lr auto")):
        with pytest.raises(TflmpError, match=says):
            RunConfig(**bad).validate()
    RunConfig(cv=5, cv_jobs=2).validate()


def test_summary_and_jobs():
    folds = [{"scores": {"float": {"accuracy": a}, "ptq_int8_tflm": {"accuracy": a - 0.1}}}
             for a in (0.8, 0.9, 1.0)]
    mean, std = summarize(folds)
    assert mean["float"]["accuracy"] == pytest.approx(0.9)
    assert std["float"]["accuracy"] == pytest.approx(0.1)  # sample std (ddof 1)
    assert mean["ptq_int8_tflm"]["accuracy"] == pytest.approx(0.8)
    assert "qat_int8_tflm" not in mean
    assert choose_jobs(None, 5, cpus=2) == 1 and choose_jobs(None, 5, cpus=8) == 4
    assert choose_jobs(3, 2, cpus=2) == 2


def test_small_test_split_suggests_cv():
    from types import SimpleNamespace

    def dataset(y_test, notes=()):
        return SimpleNamespace(raw=lambda split: (None, np.asarray(y_test, np.int64)),
                               notes=list(notes), name="tiny",
                               preprocessing=SimpleNamespace(num_classes=2))
    line = small_test_split(dataset([0, 0, 0, 1, 1, 1, 1, 1]), "classification")
    assert "--cv" in line and "as few as 3 per class" in line
    assert small_test_split(dataset([0] * 5 + [1] * 5), "classification") is None
    assert small_test_split(dataset([0, 1], ["... use cross-validation (--cv)"]),
                            "classification") is None
    assert small_test_split(dataset([0, 1]), "regression") is None


def test_csv_sessions_reach_the_folds(tmp_path):
    """A sensor CSV's session column gives every window its group (kept through
    --subset), and the folds over train+val never split a session."""
    import csv

    from tflm_pipeline.data.checks import apply_policies
    from tflm_pipeline.data.sensor_csv import load_csv_windows

    rows = [[f"s{s}", s, np.sin(i) + s, "a" if i < 20 else "b"]
            for s in range(12) for i in range(40)]
    path = tmp_path / "rec.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["session", "sid", "ax", "label"], *rows])
    ds = apply_policies(load_csv_windows(path, window=5, stride=5), subset=30)
    for split in ("train", "val", "test"):
        x, groups = getattr(ds, f"x_{split}"), ds.groups[split]
        assert len(groups) == len(x)  # one group per window, filtered with the windows
        assert [f"s{int(w[0, 0])}" for w in x] == list(groups)  # the sid channel agrees
    pool_groups = np.concatenate([ds.groups["train"], ds.groups["val"]])
    y = np.concatenate([ds.y_train, ds.y_val]).astype(np.int64)
    plan = plan_folds(y, 3, seed=0, val_fraction=0.2, groups=pool_groups)
    for f in plan.folds:
        assert not set(pool_groups[f.held_out]) & set(pool_groups[f.train])


def test_image_folder_speakers_reach_the_folds(tmp_path):
    """An image folder's file-name groups (Speech Commands speaker prefix) are each
    image's group, in the order of its samples."""
    from PIL import Image

    from tflm_pipeline.data.image_folder import load_image_folder

    root = tmp_path / "imgs"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for k in range(8):
            for i in range(2):
                Image.new("L", (4, 4), color=(k * 20 + i)).save(
                    root / label / f"{k:08x}_nohash_{i}.png")
    ds = load_image_folder(root, size=(4, 4), split=(4, 1, 1))
    for split in ("train", "val", "test"):
        assert [p.split("/")[1][:8] for p in ds.sample_ids[split]] == list(ds.groups[split])
    groups = np.concatenate([ds.groups["train"], ds.groups["val"]])
    y = np.concatenate([ds.y_train, ds.y_val]).astype(np.int64)
    for f in plan_folds(y, 2, seed=0, val_fraction=0.2, groups=groups).folds:
        assert not set(groups[f.held_out]) & set(groups[f.train])


def test_folds_fit_the_data_standardization_on_their_training_part(tmp_path):
    """A standardization fitted from data (.ts per channel) is fitted again on each
    fold's training part, never on its held-out samples; a fixed one (digits /16) is
    passed on as it is."""
    from tflm_pipeline.cv.stage import fold_jobs
    from tflm_pipeline.data import DataSpec, load_dataset
    from tflm_pipeline.data.splits import standardize
    from tflm_pipeline.runs import RunFolder
    from tflm_pipeline.tasks import get_task

    from conftest import shared

    task = get_task("classification")
    for dataset, fitted in ((str(shared("datasets", "timeseries", "basicmotions")), True),
                            ("digits", False)):
        config = RunConfig(dataset=dataset, subset=60 if not fitted else None, cv=3)
        ds = load_dataset(DataSpec.of(config))
        assert (ds.standardized is not None) == fitted
        assert ds.preprocessing_fitted_on(ds.x_train) == ds.preprocessing  # the loader's fit
        x = np.concatenate([ds.x_train, ds.x_val])
        y = np.concatenate([ds.y_train, ds.y_val]).astype(np.int64)
        plan = plan_folds(y, 3, seed=0, val_fraction=0.2)
        jobs = fold_jobs(RunFolder(tmp_path), config, ds, task, plan, x, y, [1, 2, 3], 16, 1e-3)
        assert [j.index for j in jobs] == [1, 2, 3]
        for job, fold in zip(jobs, plan.folds):
            train_x = job.parts["train"][0]
            assert (train_x == x[fold.train]).all()
            if not fitted:
                assert job.preprocessing == ds.preprocessing
                continue
            scale, offset = standardize(x[fold.train], axis=(0, 1))
            assert np.allclose(job.preprocessing.scale, scale)
            assert np.allclose(job.preprocessing.offset, offset)
            assert job.preprocessing.scale != ds.preprocessing.scale
            inputs = job.preprocessing.apply(train_x)  # zero mean, unit std per channel
            assert np.allclose(inputs.mean(axis=(0, 1)), 0, atol=1e-4)
            assert np.allclose(inputs.std(axis=(0, 1)), 1, atol=1e-3)
        assert len({str(j.preprocessing.offset) for j in jobs}) == (3 if fitted else 1)


def test_cv_section_says_the_preprocessing_was_fitted_per_fold():
    from types import SimpleNamespace

    from tflm_pipeline.reports.cv import cv_section

    row = {"fold": 1, "samples": {"train": 2, "val": 1, "held_out": 1}, "selected": "float",
           "scores": {"float": {"accuracy": 1.0}}, "seconds": 1.0}
    cv = {"k": 2, "method": "StratifiedKFold", "metric": "accuracy", "models": ["float"],
          "folds": [row, {**row, "fold": 2}], "mean": {"float": {"accuracy": 1.0}},
          "std": {"float": {"accuracy": 0.0}}, "jobs": 1, "notes": []}
    text = str(cv_section(SimpleNamespace(cross_validation={**cv, "preprocessing": "per fold"})))
    assert "standardization fitted on it" in text
    assert "standardization" not in str(cv_section(SimpleNamespace(
        cross_validation={**cv, "preprocessing": "fixed"})))
