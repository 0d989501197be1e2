"""``.npz`` files of arrays: ``x_train, y_train, x_test, y_test`` (optionally ``x_val,
y_val`` and ``labels``), or one pair ``x, y`` that is split 7:2:1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .dataset import Dataset
from .spec import DataSpec
from .splits import ids_of, ratio, split_indices


def load_npz_spec(spec: DataSpec) -> Dataset:
    return load_npz(spec.path, spec.seed, spec.split, spec.val_fraction)


def load_npz(path: Path, seed, split, val_fraction, name=None, pre=None) -> Dataset:
    """The arrays of ``path`` as a dataset; splits it lacks are carved seeded and stratified."""
    if not path.is_file():
        raise TflmpError(f"dataset file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise TflmpError(f"cannot read {path} as .npz: {e}") from None
    name = name or path.stem
    have_test = "x_test" in arrays and "y_test" in arrays
    if "x_train" in arrays and "y_train" in arrays:
        x, y = arrays["x_train"], arrays["y_train"]
    elif "x" in arrays and "y" in arrays and not have_test:
        x, y = arrays["x"], arrays["y"]
    else:
        raise TflmpError(f"{path} needs arrays x_train, y_train, x_test, y_test (optionally "
                         f"x_val, y_val), or one pair x, y; it has {sorted(arrays)}")
    y = _labels_1d(y, path)
    if len(x) != len(y):
        raise TflmpError(f"{path}: x has {len(x)} samples but y has {len(y)}")
    labels = [str(s) for s in arrays["labels"]] if "labels" in arrays else None
    num_classes = len(labels) if labels else int(y.max()) + 1
    notes = [f"arrays from {path}"]
    split_notes: list[str] = []
    if have_test:
        x_te, y_te = arrays["x_test"], _labels_1d(arrays["y_test"], path)
        te = np.arange(len(y_te))
        if "x_val" in arrays and "y_val" in arrays:
            x_tr, y_tr, x_va, y_va = x, y, arrays["x_val"], _labels_1d(arrays["y_val"], path)
            tr, va = np.arange(len(y)), np.arange(len(y_va))
            what = "index in x_train, x_val, x_test"
        else:
            tr, va = split_indices(y, seed, None, path, val_fraction, notes=split_notes)
            x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
            notes.append(f"validation = {val_fraction:.0%} of train, stratified, seed {seed}")
            what = "index in x_train (train, val), in x_test (test)"
    else:
        tr, va, te = split_indices(y, seed, split, path, notes=split_notes)
        x_tr, y_tr, x_va, y_va, x_te, y_te = x[tr], y[tr], x[va], y[va], x[te], y[te]
        notes.append(f"one array pair split {ratio(split)} stratified, seed {seed}")
        what = "index in x"
    notes += split_notes
    for split_name, xs, ys in (("train", x_tr, y_tr), ("val", x_va, y_va), ("test", x_te, y_te)):
        check_labels(ys, num_classes, f"{path} ({split_name})")
        if xs.shape[1:] != x_tr.shape[1:]:
            raise TflmpError(f"{path}: x_{split_name} samples have shape {xs.shape[1:]} but "
                             f"x_train samples have {x_tr.shape[1:]}")
        if np.issubdtype(xs.dtype, np.floating) and not np.isfinite(xs).all():
            raise TflmpError(f"{path}: x_{split_name} contains NaN or inf values; clean the data")
    if pre is None:
        shape = tuple(int(d) for d in x_tr.shape[1:]) or (1,)
        if len(shape) == 2 and x_tr.dtype == np.uint8:  # grayscale images, no channel axis
            shape = (*shape, 1)
        scale = 1.0 / 255.0 if x_tr.dtype == np.uint8 else 1.0
        pre = Preprocessing(name, shape, str(x_tr.dtype), scale, 0.0,
                            labels or [str(i) for i in range(num_classes)])
    return Dataset(name, x_tr, y_tr, x_va, y_va, x_te, y_te, preprocessing=pre, notes=notes,
                   sample_ids=ids_of((tr, va, te), what))


def _labels_1d(y: np.ndarray, path) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise TflmpError(f"{path}: labels must be integer class indices")
    return y.astype(np.int64)


def check_labels(y: np.ndarray, num_classes: int, where: str) -> None:
    """Every split non-empty, every label a class index."""
    if len(y) == 0:
        raise TflmpError(f"{where}: a split is empty; provide more samples")
    if y.min() < 0 or y.max() >= num_classes:
        raise TflmpError(f"{where}: labels must lie in 0..{num_classes - 1}, "
                         f"found {int(y.min())}..{int(y.max())}")
