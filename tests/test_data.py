import numpy as np
import pytest

from conftest import shared
from tflm_pipeline.data import Preprocessing, load_dataset, parse_split
from tflm_pipeline.errors import TflmpError


def test_digits_split_7_2_1_stratified(digits):
    s = digits.summary().to_dict()
    assert (s["train"], s["val"], s["test"]) == (1258, 359, 180)
    assert s["input_shape"] == [8, 8, 1]
    # stratified: every class in every split, in about the same proportion
    for split in ("train", "val", "test"):
        counts = np.bincount(getattr(digits, f"y_{split}"), minlength=10)
        assert counts.min() > 0
        assert counts.max() / counts.sum() < 0.13
    x, y = digits.inputs("train")
    assert x.dtype == np.float32 and x.shape == (1258, 8, 8, 1)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_mnist_idx_files_with_carved_validation():
    ds = load_dataset("mnist", shared("datasets", "mnist"), val_fraction=0.1)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (54000, 6000, 10000)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (28, 28)
    x, _ = ds.inputs("test")
    assert x.shape == (10000, 28, 28, 1) and x.max() == 1.0
    # the split is seeded: loading again gives the same arrays
    assert ds.fingerprint()["test"] == load_dataset(
        "mnist", shared("datasets", "mnist")).fingerprint()["test"]


def test_mnist_from_the_keras_cache(tmp_path, monkeypatch, rng):
    cache = tmp_path / ".keras" / "datasets"
    cache.mkdir(parents=True)
    x = rng.integers(0, 255, size=(120, 28, 28), dtype=np.uint8)
    y = np.arange(120) % 10
    np.savez(cache / "mnist.npz", x_train=x[:100], y_train=y[:100], x_test=x[100:],
             y_test=y[100:])
    monkeypatch.setenv("HOME", str(tmp_path))
    ds = load_dataset("mnist")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (90, 10, 20)
    assert ds.preprocessing.input_shape == (28, 28, 1) and ds.name == "mnist"
    monkeypatch.setenv("HOME", str(tmp_path / "empty"))
    with pytest.raises(TflmpError, match="pass --data-dir"):
        load_dataset("mnist")


def test_fashion_mnist_labels():
    ds = load_dataset("fashion-mnist", shared("datasets", "fashion-mnist"))
    assert ds.preprocessing.labels[9] == "Ankle boot"


def test_npz_with_and_without_test_split(tmp_path, rng):
    x = rng.integers(0, 255, size=(300, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 3, size=300)
    np.savez(tmp_path / "one.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "one.npz"))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (210, 60, 30)
    assert ds.preprocessing.input_shape == (6, 6, 1)
    assert ds.preprocessing.scale == pytest.approx(1 / 255)

    np.savez(tmp_path / "full.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:],
             y_test=y[200:], x_val=x[:10], y_val=y[:10])
    ds = load_dataset(str(tmp_path / "full.npz"))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (200, 10, 100)


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((10, 4)), "targets": np.arange(10)}, "needs arrays"),
    ({"x": np.zeros((30, 4)), "y": np.full(30, -1)}, "labels must lie in"),
    ({"x": np.zeros((30, 4)), "y": np.zeros(29)}, "x has 30 samples but y has 29"),
    ({"x": np.full((30, 4), np.nan), "y": np.zeros(30)}, "NaN or inf"),
])
def test_npz_errors_name_the_problem(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(TflmpError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


def test_missing_data_dir_and_unknown_dataset(tmp_path):
    with pytest.raises(TflmpError, match="no train-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(TflmpError, match="unknown dataset"):
        load_dataset("cifar-1000")


def test_truncated_idx_file(tmp_path):
    src = shared("datasets", "mnist")
    for f in src.iterdir():
        if f.suffix == ".gz":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    import gzip

    raw = gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(TflmpError, match="truncated or corrupt"):
        load_dataset("mnist", tmp_path)


def test_preprocessing_round_trip(tmp_path, digits):
    path = tmp_path / "pre.json"
    digits.preprocessing.save(path)
    again = Preprocessing.load(path)
    assert again == digits.preprocessing
    raw = digits.x_test[:5]
    np.testing.assert_array_equal(again.apply(raw), digits.preprocessing.apply(raw))


def test_parse_split():
    assert parse_split("7:2:1") == (7.0, 2.0, 1.0)
    with pytest.raises(TflmpError, match="7:2:1"):
        parse_split("70/30")
