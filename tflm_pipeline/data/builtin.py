"""The built-in datasets: scikit-learn's digits, and MNIST / Fashion-MNIST from their
original idx files (``--data-dir``, or Keras' download cache)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .dataset import Dataset
from .npz import check_labels, load_npz
from .spec import DEFAULT_SPLIT, DataSpec
from .splits import ids_of, ratio, split_indices

_FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def load_builtin(spec: DataSpec) -> Dataset:
    """``digits``, ``mnist`` or ``fashion-mnist``."""
    if spec.dataset == "digits":
        return _digits(spec.seed, spec.split)
    return _idx_dataset(spec.dataset, spec.data_dir, spec.seed, spec.val_fraction)


def default_preprocessing(name: str) -> Preprocessing | None:
    """The preprocessing a built-in dataset uses by default (None for .npz files)."""
    if name == "digits":
        return Preprocessing("digits", (8, 8, 1), "uint8", 1.0 / 16.0, 0.0,
                             [str(i) for i in range(10)])
    if name in ("mnist", "fashion-mnist"):
        labels = _FASHION_LABELS if name == "fashion-mnist" else [str(i) for i in range(10)]
        return Preprocessing(name, (28, 28, 1), "uint8", 1.0 / 255.0, 0.0, labels)
    return None


def _digits(seed, split) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.uint8)  # values 0..16
    y = d.target.astype(np.int64)
    notes = [f"scikit-learn digits (1,797 8x8 images), split {ratio(split)} stratified, "
             f"seed {seed}"]
    tr, va, te = split_indices(y, seed, split, "digits", notes=notes)
    return Dataset("digits", x[tr], y[tr], x[va], y[va], x[te], y[te],
                   preprocessing=default_preprocessing("digits"), notes=notes,
                   sample_ids=ids_of((tr, va, te), "index in scikit-learn's load_digits()"))


_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}


def _idx_dataset(name, data_dir, seed, val_fraction) -> Dataset:
    keras_cache = Path.home() / ".keras" / "datasets"
    if data_dir is None:
        # Where keras.datasets caches its downloads, so a machine that ran the Keras
        # tutorials needs no flags.
        cached_npz = keras_cache / "mnist.npz"
        if name == "mnist" and cached_npz.is_file():
            return load_npz(cached_npz, seed, DEFAULT_SPLIT, val_fraction,
                            name="mnist", pre=default_preprocessing("mnist"))
        data_dir = keras_cache / name
        if not data_dir.is_dir():
            raise TflmpError(
                f"{name} not found: pass --data-dir DIR with the four idx .gz files "
                f"(train-images-idx3-ubyte.gz, ...), or put them in {data_dir}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TflmpError(f"--data-dir {data_dir} is not a directory: point it at the folder "
                         f"holding the {name} idx .gz files")
    arrays = {k: read_idx(_find_idx(data_dir, stem)) for k, stem in _IDX_FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise TflmpError(f"{data_dir}: {split} images and labels differ in count "
                             f"({len(arrays[f'x_{split}'])} vs {len(arrays[f'y_{split}'])})")
    notes = [f"idx files from {data_dir}; validation = {val_fraction:.0%} of train, "
             f"stratified, seed {seed}"]
    y_train = arrays["y_train"].astype(np.int64)
    tr, va = split_indices(y_train, seed, None, data_dir, val_fraction, notes=notes)
    pre = default_preprocessing(name)
    check_labels(y_train[tr], pre.num_classes, str(data_dir))
    te = np.arange(len(arrays["y_test"]))
    return Dataset(name, arrays["x_train"][tr], y_train[tr], arrays["x_train"][va],
                   y_train[va], arrays["x_test"], arrays["y_test"].astype(np.int64),
                   preprocessing=pre, notes=notes,
                   sample_ids=ids_of((tr, va, te), "index in the train idx file (train, val), "
                                     "in the t10k idx file (test)"))


def _find_idx(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem,
                      data_dir / stem.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    raise TflmpError(f"{data_dir} has no {stem}.gz: --data-dir must hold the four original "
                     "idx files (train/t10k images and labels)")


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (optionally gzipped): magic, dims, big-endian payload."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise TflmpError(f"cannot read {path}: {e}; re-download the original idx file") from None
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in dtypes:
        raise TflmpError(f"{path} is not an idx file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(dtypes[raw[2]])
    count = int(np.prod(dims)) if dims else 0
    offset = 4 + 4 * ndim
    if len(raw) - offset != count * dtype.itemsize:
        raise TflmpError(f"{path} is truncated or corrupt: header says {dims}, "
                         f"payload has {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)
