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
    p = run_cli("train", "--dataset", tmp_path / "d50.npz", "--model", "mlp", "--epochs", "1",
                "--qat-epochs", "0", "--max-drop", "100", "--out", run)
    assert p.returncode == 0, p.stderr
    assert "split per class instead" in p.stdout and "--cv" in p.stdout
    rec = json.loads((run / "report.json").read_text())
    assert (rec["dataset"]["train"], rec["dataset"]["val"], rec["dataset"]["test"]) == (30, 10, 10)
    assert any("split per class instead" in n for n in rec["dataset"]["notes"])
    splits = json.loads((run / "splits.json").read_text())
    assert splits["id"] == "index in x"
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == list(range(50))
    assert sorted(y[splits["test"]].tolist()) == list(range(10))
    # a dataset too small to split fails in one line and leaves no folder behind
    np.savez(tmp_path / "d2.npz", x=x[:2], y=y[:2])
    from tflm_pipeline.commands.train import train
    from tflm_pipeline.config import RunConfig

    with pytest.raises(TflmpError, match="too few for 3 splits"):
        train(RunConfig(dataset=str(tmp_path / "d2.npz"), epochs=1),
              tmp_path / "new" / "deeper" / "run")
    assert not (tmp_path / "new").exists()


# --- raw sensor CSV conventions: timestamps -------------------------------------------

DAPHNET = ("datasets", "timeseries", "daphnet", "S06R02E0.csv")


def _write_rows(path, header, rows):
    import csv

    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def test_daphnet_iso_timestamps_give_64_hz_and_are_no_channel():
    from conftest import shared
    from tflm_pipeline.data.sensor_csv import load_csv_windows

    ds = load_csv_windows(shared(*DAPHNET), window=128, stride=128, label_column="is_anomaly")
    assert ds.preprocessing.input_shape == (128, 9)  # 9 accelerometer axes, no timestamp
    assert "timestamp" not in ds.channel_names
    assert ds.preprocessing.sample_rate_hz == pytest.approx(64.0, abs=0.01)
    assert ds.preprocessing.to_dict()["sample_rate_hz"] == pytest.approx(64.0, abs=0.01)
    assert any("64 Hz" in n and "0 gap(s)" in n for n in ds.notes)


def test_timestamp_ms_column_gives_rate_and_a_gap_ends_a_window(tmp_path, hello_world_int8):
    from tflm_pipeline.codegen.settings import write_settings_header
    from tflm_pipeline.data.sensor_csv import load_csv_windows
    from tflm_pipeline.tflite.model_info import read_model

    # 100 Hz (10 ms steps), a 500 ms pause after row 45, and a step back after row 72
    t = np.arange(120) * 10
    t[46:] += 500
    t[73:] -= 2000
    rows = [[int(ms), i, -i, "a" if i < 60 else "b"] for i, ms in enumerate(t)]
    path = _write_rows(tmp_path / "imu.csv", ["timestamp_ms", "ax", "ay", "label"], rows)
    ds = load_csv_windows(path, window=10, stride=10, split=(1, 1, 1))
    assert ds.preprocessing.input_shape == (10, 2)  # timestamp_ms is not a channel
    assert ds.preprocessing.sample_rate_hz == 100.0
    firsts = sorted(int(x[0, 0]) for s in ("train", "val", "test")
                    for x in getattr(ds, f"x_{s}"))
    # grids restart after the pause (46) and the step back (73); windows crossing either
    # (36, 66) or the label change at 60 (56) are skipped
    assert firsts == [0, 10, 20, 30, 46, 73, 83, 93, 103]
    assert any("2 gap(s)" in n for n in ds.notes)
    header = write_settings_header(read_model(hello_world_int8), "imu", tmp_path,
                                   preprocessing=ds.preprocessing, arena=None)
    assert "#define IMU_SAMPLE_RATE_HZ 100.0f" in header.read_text()
    with pytest.raises(TflmpError, match="hold timestamps"):
        load_csv_windows(path, window=10, stride=10, columns=["ax", "timestamp_ms"])


# --- group-aware splits ---------------------------------------------------------------

def test_csv_session_never_shared_between_splits_on_windows(tmp_path):
    from tflm_pipeline.data.sensor_csv import load_csv_windows

    rows = []
    for session in range(9):  # each session: 20 rows of 'a', 20 of 'b'
        for i in range(40):
            rows.append([f"s{session}", session, np.sin(i) + session, "a" if i < 20 else "b"])
    path = _write_rows(tmp_path / "rec.csv", ["session", "sid", "ax", "label"], rows)
    ds = load_csv_windows(path, window=5, stride=2)  # overlapping windows
    seen = {}
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert set(y.tolist()) == {0, 1}  # stratified where possible: both classes
        sessions = set(np.unique(x[:, :, 0]).astype(int).tolist())  # the sid channel
        assert all(np.all(w[:, 0] == w[0, 0]) for w in x)  # no window spans two sessions
        seen[split] = sessions
        assert set(ds.sample_ids["groups"][split]) == {f"s{s}" for s in sessions}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])
    assert not (seen["val"] & seen["test"])
    assert len(seen["train"] | seen["val"] | seen["test"]) == 9
    assert any("split by group" in n and "no group is in two splits" in n for n in ds.notes)
    # --group-column none: windows still stop at session changes, splits mix sessions
    mixed = load_csv_windows(path, window=5, stride=2, group_column="none")
    assert "groups" not in mixed.sample_ids
    # one group cannot fill three splits: split by window, and said so
    single = _write_rows(tmp_path / "one.csv", ["session", "sid", "ax", "label"],
                         [r for r in rows if r[0] == "s0"])
    one = load_csv_windows(single, window=5, stride=5)
    assert len(one.y_train) + len(one.y_val) + len(one.y_test) == 8
    assert any("only 1 group(s) for 3 splits: split by sample" in n for n in one.notes)
    with pytest.raises(TflmpError, match="no group column 'user'"):
        load_csv_windows(path, window=5, stride=2, group_column="user")
    from tflm_pipeline.data.spec import DataSpec

    with pytest.raises(TflmpError, match="--group-column applies to CSV files and folders"):
        DataSpec("digits", group_column="subject").check()


def test_folder_groups_from_speaker_prefix_and_pattern(tmp_path):
    from PIL import Image

    from tflm_pipeline.data.image_folder import load_image_folder

    root = tmp_path / "imgs"
    speakers = [f"{k:08x}" for k in range(6)]
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for spk in speakers:
            for i in range(3):
                Image.new("L", (4, 4), color=(hash((spk, i, label)) % 255)).save(
                    root / label / f"{spk}_nohash_{i}.png")
    ds = load_image_folder(root, size=(4, 4), split=(4, 1, 1))
    by_split = {s: {p.split("/")[1][:8] for p in ds.sample_ids[s]}
                for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["val"]) and not (by_split["val"] & by_split["test"])
    assert not (by_split["train"] & by_split["test"])
    # a pattern of the file name: here the file number groups the images instead
    ds = load_image_folder(root, size=(4, 4), split=(4, 1, 1), group_column=r"_(\d)\.png$")
    by_split = {s: {p[-5] for p in ds.sample_ids[s]} for s in ("train", "val", "test")}
    assert sorted(len(v) for v in by_split.values()) == [1, 1, 1]
    with pytest.raises(TflmpError, match="does not match --group-column"):
        load_image_folder(root, size=(4, 4), group_column=r"^speaker")
    # a sub-folder per speaker inside each class folder: the sub-folder is the group
    for label in ("cat", "dog"):
        for k in range(5):
            (tmp_path / "nested" / label / f"spk{k}").mkdir(parents=True)
            for i in range(2):
                Image.new("L", (4, 4), color=(hash((k, i, label)) % 255)).save(
                    tmp_path / "nested" / label / f"spk{k}" / f"{i}.png")
    ds = load_image_folder(tmp_path / "nested", size=(4, 4), split=(3, 1, 1))
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 20
    by_split = ds.sample_ids["groups"]
    assert sum(len(v) for v in by_split.values()) == 5  # each speaker in one split
    assert all(p.split("/")[1] in by_split[s] for s in ("train", "val", "test")
               for p in ds.sample_ids[s])
    # given train/ and test/ folders that share two speakers: a leak the checks name
    from tflm_pipeline.data.checks import check_dataset

    for split, spk in (("train", speakers), ("test", speakers[:2] + ["0000ffff"])):
        for label in ("cat", "dog"):
            (tmp_path / "tt" / split / label).mkdir(parents=True)
            for s in spk:
                Image.new("L", (4, 4), color=(hash((s, split, label)) % 255)).save(
                    tmp_path / "tt" / split / label / f"{s}_nohash_0.png")
    ds = load_image_folder(tmp_path / "tt", size=(4, 4), val_fraction=0.3)
    assert ds.sample_ids["groups"]["test"] == ["00000000", "00000001", "0000ffff"]
    c = check_dataset(ds)
    assert c.groups_shared == 2 and "2 group(s) are in more than one split" in c.leaks


# --- data checks on planted sets ------------------------------------------------------

def _planted_npz(tmp_path):
    """Random 6x6 images with known copies: 4 extra copies inside train plus one copy
    with another label; val holds 3 copies of train; test 5 copies of train, 2 of val
    and 6 near-copies of train (+-2 grey levels)."""
    rng = np.random.default_rng(7)
    img = lambda n: rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8)  # noqa: E731
    x_tr, y_tr = img(200), rng.integers(0, 3, 200)
    x_va, y_va = img(40), rng.integers(0, 3, 40)
    x_te, y_te = img(50), rng.integers(0, 3, 50)
    x_tr = np.concatenate([x_tr, x_tr[:5]])
    y_tr = np.concatenate([y_tr, y_tr[:4], [(y_tr[4] + 1) % 3]])
    x_va = np.concatenate([x_va, x_tr[10:13]])
    y_va = np.concatenate([y_va, y_tr[10:13]])
    noise = rng.integers(-2, 3, size=(6, 6, 6))
    near = np.clip(x_tr[20:26].astype(int) + noise, 0, 255).astype(np.uint8)
    x_te = np.concatenate([x_te, x_tr[30:35], x_va[:2], near])
    y_te = np.concatenate([y_te, y_tr[30:35], y_va[:2], y_tr[20:26]])
    np.savez(tmp_path / "planted.npz", x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va,
             x_test=x_te, y_test=y_te)
    return tmp_path / "planted.npz"


def test_planted_duplicates_leaks_and_near_copies_are_found_exactly(tmp_path):
    from tflm_pipeline.data import load_dataset
    from tflm_pipeline.data.checks import check_dataset

    path = _planted_npz(tmp_path)
    kept = load_dataset(str(path), duplicates="keep")
    c = check_dataset(kept)
    assert c.duplicates_within == {"train": 5, "val": 0, "test": 0}
    assert c.label_conflicts == 1
    assert c.duplicates_across == {"train/val": 3, "train/test": 5, "val/test": 2}
    assert c.near_duplicates_across == {"train/val": 0, "train/test": 6, "val/test": 0}
    near = c.examples["near_duplicates_train/test"]
    assert sorted(e["train"] for e in near) == list(range(20, 25))  # 5 examples kept
    assert all(e["test"] >= 57 for e in near)
    assert c.class_counts["train"] == np.bincount(kept.y_train, minlength=3).tolist()
    assert len(c.leaks) == 4 and "kept" in c.leaks[0]
    # a run's default: val/test copies of an earlier split are dropped, and said so
    dropped = load_dataset(str(path), duplicates="drop")
    assert (len(dropped.y_val), len(dropped.y_test)) == (40, 56)
    assert dropped.policy["duplicates_found"] == {"train/val": 3, "train/test": 5,
                                                  "val/test": 2}
    assert any("dropped 3 val and 7 test" in n for n in dropped.notes)
    after = check_dataset(dropped)
    assert after.duplicates_across == {"train/val": 0, "train/test": 0, "val/test": 0}
    assert "dropped from test" in after.leaks[1]
    assert len(dropped.sample_ids["test"]) == 56 and 50 not in dropped.sample_ids["test"]
    with pytest.raises(TflmpError, match="10 val/test sample"):
        load_dataset(str(path), duplicates="error")


def test_covid3month_test_file_copies_two_train_series():
    from conftest import shared
    from tflm_pipeline.data import load_dataset

    covid = load_dataset(str(shared("datasets", "timeseries", "covid3month")),
                         duplicates="drop")
    assert covid.policy["duplicates_found"] == {"train/val": 0, "train/test": 2, "val/test": 0}
    assert len(covid.y_test) == 59  # of 61


def test_planted_missing_values_outliers_and_constant_channel_in_a_csv(tmp_path):
    from tflm_pipeline.data.checks import check_dataset
    from tflm_pipeline.data.sensor_csv import load_csv_windows

    rng = np.random.default_rng(3)
    values = rng.uniform(-1, 1, size=(600, 3)).round(4)
    cells = values.astype(object)
    for row in (11, 250, 444):
        cells[row, 0] = ""  # missing in 'a'
    cells[300, 1] = "NaN"  # missing in 'b'
    for row in (5, 123, 321, 599):
        cells[row, 2] = 50.0  # outliers in 'c'
    rows = [[*cells[i], 7.0, "up" if (i // 100) % 2 else "down"] for i in range(600)]
    path = _write_rows(tmp_path / "imu.csv", ["a", "b", "c", "d", "label"], rows)
    with pytest.raises(TflmpError, match=r"imu.csv:13: the row holds NaN.*column 'a'"):
        load_csv_windows(path, window=20, stride=20)
    ds = load_csv_windows(path, window=20, stride=20, missing="interpolate")
    assert np.isfinite(ds.x_train).all()
    c = check_dataset(ds)
    assert c.missing == {"a": 3, "b": 1, "c": 0, "d": 0}
    assert c.outliers == {"a": 0, "b": 0, "c": 4, "d": 0}
    assert c.constant_channels == ["d"]
    dropped = load_csv_windows(path, window=20, stride=20, missing="drop")
    assert len(dropped.y_train) + len(dropped.y_val) + len(dropped.y_test) < 30
    assert any("4 row(s) dropped" in n for n in dropped.notes)


def test_subset_per_split_stratified_and_class_weights(digits):
    from tflm_pipeline.data import load_dataset
    from tflm_pipeline.data.checks import class_weights

    small = load_dataset("digits", subset=20)
    for split in ("train", "val", "test"):
        y = getattr(small, f"y_{split}")
        assert len(y) == 20 and np.bincount(y, minlength=10).tolist() == [2] * 10
    assert len(small.sample_ids["train"]) == 20
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}


def test_data_check_command_prints_leaks_first_and_writes_json(tmp_path):
    path = _planted_npz(tmp_path)
    p = run_cli("data", "check", path, "--out", tmp_path / "checks.json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[1] == "leaks across splits: " and lines[2].startswith("  LEAK: 3 val")
    assert "near-duplicates across splits: train/val 0, train/test 6, val/test 0" in p.stdout
    found = json.loads((tmp_path / "checks.json").read_text())["data_checks"]
    assert found["policy"]["dropped"] == {"train/val": 3, "train/test": 5, "val/test": 2}
    p = run_cli("data", "check", path, "--duplicates", "error")
    assert p.returncode == 2 and p.stderr.startswith("tflmp: error: planted: 10 val/test")


@pytest.mark.slow
def test_train_records_data_checks_and_reports_leaks_first(tmp_path):
    path = _planted_npz(tmp_path)
    run = tmp_path / "run"
    p = run_cli("train", "--dataset", path, "--model", "mlp", "--epochs", "1", "--qat-epochs",
                "0", "--max-drop", "100", "--class-weight", "auto", "--out", run)
    assert p.returncode == 0, p.stderr
    assert "data leak: 6 test sample(s) are near-duplicates" in p.stderr
    assert "class weights (--class-weight auto): 0 " in p.stdout
    rec = json.loads((run / "report.json").read_text())
    checks = rec["data_checks"]
    assert checks["policy"]["duplicates_found"] == {"train/val": 3, "train/test": 5,
                                                    "val/test": 2}
    assert checks["near_duplicates_across"]["train/test"] == 6 and len(checks["leaks"]) == 4
    assert rec["dataset"]["test"] == 56
    md = (run / "report.md").read_text()
    assert md.index("Data leaks across splits") < md.index("Summary")
    assert "Data checks" in (run / "report.html").read_text()
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits["test"]) == 56 and splits["id"].startswith("index in x_train")


def test_ts_folder_with_50_train_series_in_10_classes(tmp_path, rng):
    """The issue's case: 50 training series over 10 classes and a 10% validation share
    (5 series) used to stop in scikit-learn."""
    from tflm_pipeline.data import load_dataset

    classes = [f"c{k}" for k in range(10)]
    for name, per_class in (("TRAIN", 5), ("TEST", 3)):
        lines = ["@problemName Tiny", "@univariate false", "@dimensions 3",
                 "@equalLength true", "@seriesLength 20",
                 f"@classLabel true {' '.join(classes)}", "@data"]
        for k, label in enumerate(classes):
            for _ in range(per_class):
                chans = [",".join(f"{v:.3f}" for v in rng.normal(k, 1, 20)) for _ in range(3)]
                lines.append(":".join(chans) + f":{label}")
        (tmp_path / f"Tiny_{name}.ts").write_text("\n".join(lines) + "\n")
    ds = load_dataset(str(tmp_path))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (40, 10, 30)
    assert set(ds.y_val.tolist()) == set(range(10))
    assert any("split per class instead" in n for n in ds.notes)
    assert ds.sample_ids["id"] == ("case number in Tiny_TRAIN.ts (train, val), in "
                                   "Tiny_TEST.ts (test)")
