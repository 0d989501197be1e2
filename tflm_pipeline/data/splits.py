"""Seeded, stratified train/val/test splits, shared by every loader."""

from __future__ import annotations

import numpy as np

from ..errors import TflmpError


def split_two(x, y, val_fraction: float, seed: int):
    """(x_train, y_train, x_val, y_val): ``val_fraction`` of the samples for validation."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise TflmpError(f"--val-split must be between 0 and 1, got {val_fraction}")
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=max(1, round(len(y) * val_fraction)),
                                              random_state=seed, stratify=_stratify(y))
    return x_tr, y_tr, x_va, y_va


def split_three(x, y, split, seed: int):
    """(x_train, y_train, x_val, y_val, x_test, y_test) in the ratio ``split`` (7:2:1)."""
    from sklearn.model_selection import train_test_split

    if len(split) != 3 or min(split) <= 0:
        raise TflmpError(f"--split needs three positive parts like 7:2:1, got {split}")
    total = sum(split)
    n_test = max(1, round(len(y) * split[2] / total))
    n_val = max(1, round(len(y) * split[1] / total))
    x_rest, x_te, y_rest, y_te = train_test_split(x, y, test_size=n_test,
                                                  random_state=seed, stratify=_stratify(y))
    x_tr, x_va, y_tr, y_va = train_test_split(x_rest, y_rest, test_size=n_val,
                                              random_state=seed, stratify=_stratify(y_rest))
    return x_tr, y_tr, x_va, y_va, x_te, y_te


def split_indices(y, seed: int, split, where, val_fraction: float | None = None):
    """Indices of train/val/test by ``split`` (or train/val by ``val_fraction``); a
    one-line error naming ``where`` when there are too few samples."""
    idx = np.arange(len(y))
    try:
        if val_fraction is not None:
            return split_two(idx, y, val_fraction, seed)[0::2]
        return split_three(idx, y, split, seed)[0::2]
    except ValueError as e:
        raise TflmpError(f"{where}: {len(y)} samples in {len(np.unique(y))} classes are too few "
                         f"to split ({e}); add data or change --split") from None


def split_arrays(x, y, seed: int, split, where):
    """The six arrays of :func:`split_three`, by :func:`split_indices`."""
    tr, va, te = split_indices(y, seed, split, where)
    return x[tr], y[tr], x[va], y[va], x[te], y[te]


def ratio(split) -> str:
    """(7.0, 2.0, 1.0) -> '7:2:1'."""
    return ":".join(f"{p:g}" for p in split)


def split_note(split, seed: int) -> str:
    return f"split {ratio(split)} stratified, seed {seed}"


def standardize(x: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with ``x * scale + offset`` of zero mean and unit std over ``axis``."""
    mean, std = x.mean(axis=axis, dtype=np.float64), x.std(axis=axis, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return 1.0 / std, -mean / std


def _stratify(y):
    _, counts = np.unique(y, return_counts=True)
    return y if counts.min() >= 2 else None
