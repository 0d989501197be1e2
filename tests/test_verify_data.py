"""`tflmp verify RUN --data PATH`: new data read with the run's own format options and
preprocessing — a held-out sensor CSV scored in TFLM like the run's own split, an
unlabelled one predicted window by window, data that does not fit refused in one line."""

import csv
import json

import numpy as np
import pytest

from conftest import run_cli, shared
from tflm_pipeline.config import RunConfig
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.preprocessing import Preprocessing
from tflm_pipeline.runs import RunFolder

CHANNELS = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


# --- fast: a run folder of settings around a small model, no training ----------------

def _imu_rows(labels, hz=100.0, n=40, seed=0):
    """``n`` rows per label at ``hz``: timestamp_ms, ax, ay, az, label."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, label in enumerate(labels):
        for k in range(n):
            t = (i * n + k) * 1000.0 / hz
            rows.append([f"{t:g}", *np.round(rng.normal(size=3), 4), label])
    return rows


@pytest.fixture
def imu_run(tmp_path, hello_world_int8):
    """A run folder as `tflmp train` leaves it for a CSV of windows of 10 rows at 100 Hz
    with classes idle and walk (the model is any .tflite: these tests stop before it)."""
    data = _write_csv(tmp_path / "imu.csv", ["timestamp_ms", "ax", "ay", "az", "label"],
                      _imu_rows(["idle", "walk"]))
    run = RunFolder.create(tmp_path / "run", RunConfig(dataset=str(data), window=10, stride=10))
    Preprocessing("imu", (10, 3), "float32", [1.0] * 3, [0.0] * 3, ["idle", "walk"],
                  sample_rate_hz=100.0).save(run.file(RunFolder.PREPROCESSING))
    run.selected_model.write_bytes(hello_world_int8)
    return run


def test_new_csv_is_windowed_by_the_run_options(imu_run, tmp_path):
    from tflm_pipeline.data.new_data import load_new_data

    pre, config = imu_run.preprocessing, imu_run.config
    # extra columns are fine; a subset of the run's classes is scored (and said)
    rows = [[r[0], r[3], r[1], 7, r[2], r[4]] for r in _imu_rows(["walk"], n=35)]
    walk = _write_csv(tmp_path / "walk.csv", ["timestamp_ms", "az", "ax", "extra", "ay",
                                              "label"], rows)
    new = load_new_data(walk, config, pre)
    assert new.x.shape == (3, 10, 3) and new.y.tolist() == [1, 1, 1]  # walk is class 1
    assert new.classes == ["walk"] and any("1 of the run's 2 classes" in n for n in new.notes)
    assert new.sources == ["2", "12", "22"] and new.source_kind == "csv_line"
    np.testing.assert_allclose(new.x[0, 0], [float(rows[0][2]), float(rows[0][4]),
                                             float(rows[0][1])], rtol=1e-6)  # run's order
    # no label column: windows for predictions only
    unlabelled = _write_csv(tmp_path / "field.csv", ["timestamp_ms", "ax", "ay", "az"],
                            [r[:4] for r in _imu_rows(["idle", "walk", "walk"], n=20)])
    new = load_new_data(unlabelled, config, pre)
    assert new.y is None and len(new.x) == 6
    # another sample rate does not fit
    slow = _write_csv(tmp_path / "slow.csv", ["timestamp_ms", "ax", "ay", "az", "label"],
                      _imu_rows(["idle"], hz=50.0))
    with pytest.raises(TflmpError, match="50 Hz but the run at 100 Hz"):
        load_new_data(slow, config, pre)


@pytest.mark.parametrize("change, message", [
    ("drop_az", "lacks the run's channel column(s) az"),
    ("new_class", "has class(es) 'run' the run was not trained on"),
])
def test_data_that_does_not_fit_is_one_line_exit_2(imu_run, tmp_path, capsys, change, message):
    from tflm_pipeline.cli import main

    rows = _imu_rows(["idle", "run"])
    header = ["timestamp_ms", "ax", "ay", "az", "label"]
    if change == "drop_az":
        header, rows = header[:3] + header[4:], [r[:3] + r[4:] for r in rows]
    path = _write_csv(tmp_path / "new.csv", header, rows)
    assert main(["verify", str(imu_run.path), "--data", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tflmp: error: --data") and message in err[0]
    assert not (imu_run.path / RunFolder.NEW_DATA).exists()


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])  # digits: test_data_trust
def test_subset_is_per_split_and_stratified_for_the_idx_builtins(name):
    from tflm_pipeline.data import load_dataset

    ds = load_dataset(name, shared("datasets", name), subset=30)
    for split in ("train", "val", "test"):
        y = getattr(ds, f"y_{split}")
        assert len(y) == 30 and np.bincount(y, minlength=10).tolist() == [3] * 10, split
        assert len(ds.sample_ids[split]) == 30
    assert ds.policy["subset"]


# --- slow: a real run on real IMU data (BasicMotions as a sensor CSV) ---------------

def _basicmotions_csv(path, which, *, labels=True, sessions=None):
    """BasicMotions' ``which`` (TRAIN/TEST) cases as CSV rows: one session per case."""
    from tflm_pipeline.data.ts_file import read_ts

    root = shared("datasets", "timeseries", "basicmotions")
    classes = read_ts(root / "BasicMotions_TRAIN.ts").classes
    ts = read_ts(root / f"BasicMotions_{which}.ts", classes)
    rows = [[f"{which.lower()}{i}", *(f"{v:.6g}" for v in step),
             *([classes[label]] if labels else [])]
            for i, (case, label) in enumerate(zip(ts.x, ts.y)) for step in case
            if sessions is None or f"{which.lower()}{i}" in sessions]
    return _write_csv(path, ["session", *CHANNELS, *(["activity"] if labels else [])], rows)


@pytest.fixture(scope="module")
def motion_run(tmp_path_factory):
    """cnn1d trained briefly on BasicMotions' train cases (windows of 50 rows), PTQ int8."""
    tmp = tmp_path_factory.mktemp("motion")
    data = _basicmotions_csv(tmp / "motion.csv", "TRAIN")
    run = tmp / "run"
    p = run_cli("train", "--model", "cnn1d", "--dataset", data, "--window", "50", "--stride",
                "50", "--label-column", "activity", "--epochs", "3", "--qat-epochs", "0",
                "--max-drop", "100", "--out", run)
    assert p.returncode == 0, p.stderr
    return run, data, tmp


@pytest.mark.slow
def test_held_out_csv_scores_like_the_run_split(motion_run):
    from tflm_pipeline import verify

    run, data, tmp = motion_run
    held_out = _basicmotions_csv(tmp / "held_out.csv", "TEST")  # other recordings
    p = run_cli("verify", run, "--data", held_out)
    assert p.returncode == 0, p.stderr
    result = json.loads((run / "verify" / "held_out" / "result.json").read_text())
    assert result["samples"] == 80 and result["labelled"]  # 40 cases x 2 windows
    assert sum(c["support"] for c in result["per_class"]) == 80
    assert f"TFLM accuracy on new data held_out: {result['metrics']['accuracy']:.4f}" in p.stdout
    report = (run / "report.md").read_text()
    assert "## New data: held_out" in report and (run / "report.html").is_file()
    with open(run / "verify" / "held_out" / "predictions.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 80 and table[0]["csv_line"] == "2"
    hits = sum(r["true"] == r["predicted"] for r in table)
    assert hits / 80 == pytest.approx(result["metrics"]["accuracy"])

    # the run's own test windows, as a new file, score exactly as the run's split does
    test_sessions = json.loads((run / "splits.json").read_text())["groups"]["test"]
    same = _basicmotions_csv(tmp / "same_windows.csv", "TRAIN", sessions=set(test_sessions))
    on_split, as_data = verify(run), verify(run, data=same)
    assert as_data.samples == on_split.samples == 2 * len(test_sessions)
    assert as_data.scores == on_split.scores  # accuracy, n and confusion


@pytest.mark.slow
def test_unlabelled_csv_writes_one_prediction_per_window(motion_run):
    from tflm_pipeline import verify

    run, data, tmp = motion_run
    verify(run, data=_basicmotions_csv(tmp / "labelled.csv", "TEST"))
    p = run_cli("verify", run, "--data", _basicmotions_csv(tmp / "field.csv", "TEST",
                                                          labels=False))
    assert p.returncode == 0, p.stderr
    assert "80 samples of field without labels; predicted:" in p.stdout
    assert f"wrote {run / 'verify' / 'field' / 'predictions.csv'}" in p.stdout

    def table(name):
        with open(run / "verify" / name / "predictions.csv") as f:
            return list(csv.DictReader(f))

    field_rows, labelled_rows = table("field"), table("labelled")
    assert len(field_rows) == 80 and "true" not in field_rows[0]
    assert [r["predicted"] for r in field_rows] == [r["predicted"] for r in labelled_rows]
    assert [r["csv_line"] for r in field_rows] == [str(2 + 50 * i) for i in range(80)]
    labels = json.loads((run / "preprocessing.json").read_text())["labels"]
    scores = np.array([[float(r[f"score_{c}"]) for c in labels] for r in field_rows])
    assert np.allclose(scores.sum(axis=1), 1.0, atol=0.02)  # softmax, int8 steps
    result = json.loads((run / "verify" / "field" / "result.json").read_text())
    assert not result["labelled"] and result["metrics"] == {}
    assert sum(result["predicted_counts"].values()) == 80


def _concat(ds):
    """Every sample of a loaded dataset by its id (file path under the folder)."""
    ids = [i for s in ("train", "val", "test") for i in ds.sample_ids[s]]
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    return dict(zip(ids, x))


def test_new_image_and_wav_folders_read_as_the_run_loader_reads(tmp_path, digits):
    import shutil
    import wave

    from PIL import Image

    from tflm_pipeline.data.image_folder import load_image_folder
    from tflm_pipeline.data.new_data import load_new_data
    from tflm_pipeline.data.wav_folder import load_wav_folder

    images = tmp_path / "images"
    for label in (0, 1, 7):
        (images / f"digit{label}").mkdir(parents=True)
        for k, img in enumerate(digits.x_train[digits.y_train == label][:6]):
            Image.fromarray((img * 15).astype(np.uint8)).save(
                images / f"digit{label}" / f"{k}.png")
    ds = load_image_folder(images, size=(12, 10), color="grayscale")
    config = RunConfig(dataset=str(images), image_size=(12, 10))
    # a class folder subset (8x8 on disk: resized by the run's rule)
    subset = tmp_path / "new_images"
    shutil.copytree(images / "digit7", subset / "digit7")
    new = load_new_data(subset, config, ds.preprocessing)
    by_id = _concat(ds)
    assert new.y.tolist() == [2] * 6 and new.classes == ["digit7"]
    for source, x in zip(new.sources, new.x):
        np.testing.assert_array_equal(x, by_id[source])
    flat = tmp_path / "flat"
    shutil.copytree(images / "digit1", flat)
    new = load_new_data(flat, config, ds.preprocessing)
    assert new.y is None and new.sources == [f"{k}.png" for k in range(6)]
    np.testing.assert_array_equal(new.x[0], by_id["digit1/0.png"])

    clip = shared("models", "testdata", "micro_speech", "yes_1000ms.wav")
    wavs = tmp_path / "wav"
    for label in ("yes", "no"):
        (wavs / label).mkdir(parents=True)
        for k in range(5):
            with wave.open(str(clip)) as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
            with wave.open(str(wavs / label / f"{k}.wav"), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(16000)
                out.writeframes(np.roll(pcm, 300 * k + (label == "no") * 77).tobytes())
    ds = load_wav_folder(wavs, features="log-mel", clip_seconds=0.5)
    new = load_new_data(wavs, RunConfig(dataset=str(wavs)), ds.preprocessing)
    by_id = _concat(ds)
    assert new.y.tolist() == [0] * 5 + [1] * 5  # "no" < "yes", as the run's labels
    for source, x in zip(new.sources, new.x):
        np.testing.assert_array_equal(x, by_id[source])


def test_new_npz_maps_names_and_refuses_wrong_shapes(tmp_path, digits):
    from tflm_pipeline.data.new_data import load_new_data

    pre, config = digits.preprocessing, RunConfig()
    path = tmp_path / "new.npz"
    np.savez(path, x=digits.x_test[:5], y=np.array([3, 3, 1, 1, 1]),
             labels=np.array([str(i) for i in range(10)]))
    new = load_new_data(path, config, pre)
    assert new.y.tolist() == [3, 3, 1, 1, 1] and new.classes == ["1", "3"]
    np.savez(path, x=digits.x_test[:5])
    assert load_new_data(path, config, pre).y is None
    np.savez(path, x=np.zeros((2, 7, 7), np.uint8))
    with pytest.raises(TflmpError, match=r"shape \[7, 7\] do not fit the run's input"):
        load_new_data(path, config, pre)
    with pytest.raises(TflmpError, match="not trained on images"):
        load_new_data(tmp_path, config, pre)  # digits is 8x8 values 0..16, not pixels / 255


def test_new_ts_file_reads_as_the_run_test_split():
    from tflm_pipeline.data import load_dataset
    from tflm_pipeline.data.new_data import load_new_data

    root = shared("datasets", "timeseries", "basicmotions")
    ds = load_dataset(str(root))  # its test split is BasicMotions_TEST.ts
    new = load_new_data(root / "BasicMotions_TEST.ts", RunConfig(dataset=str(root)),
                        ds.preprocessing)
    np.testing.assert_array_equal(new.x, ds.x_test)
    assert new.y.tolist() == ds.y_test.tolist() and len(new.classes) == 4
    covid = shared("datasets", "timeseries", "covid3month", "Covid3Month_TEST.ts")
    with pytest.raises(TflmpError, match="regression targets"):
        load_new_data(covid, RunConfig(dataset=str(root)), ds.preprocessing)


def test_regression_run_scores_a_new_ts_file(tmp_path):
    from tiny_tflite import fully_connected

    from tflm_pipeline import verify
    from tflm_pipeline.data import load_dataset
    from tflm_pipeline.tasks import REGRESSION

    root = shared("datasets", "timeseries", "covid3month")
    ds = load_dataset(str(root))
    run = RunFolder.create(tmp_path / "run", RunConfig(dataset=str(root), task="regression"))
    ds.preprocessing.save(run.file(RunFolder.PREPROCESSING))
    run.selected_model.write_bytes(fully_connected((1, 84), 1))  # any 84 -> 1 int8 model
    test_file = root / "Covid3Month_TEST.ts"
    result = verify(run.path, data=test_file)
    assert result.samples == 61 and set(result.scores) == {"mae", "rmse", "r2", "n"}
    with open(run.path / "verify" / "Covid3Month_TEST" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["case", "true", "output_0"] and len(rows) == 61
    true = np.array([float(r["true"]) for r in rows])
    out = np.array([float(r["output_0"]) for r in rows])
    np.testing.assert_allclose(true, ds.y_test, rtol=1e-5)  # the file's targets, in order
    mae = REGRESSION.score(None, true, out, 1)["mae"]
    assert result.scores["mae"] == pytest.approx(mae, rel=1e-4)  # 6 digits in the CSV
    with pytest.raises(TflmpError, match="holds class labels; the run predicts values"):
        verify(run.path, data=shared("datasets", "timeseries", "basicmotions",
                                     "BasicMotions_TEST.ts"))
