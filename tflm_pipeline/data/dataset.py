"""A loaded dataset: raw train/val/test splits and the preprocessing of its samples."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..preprocessing import Preprocessing
from ..record import DatasetSummary
from .splits import standardize

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Dataset:
    """Raw train/val/test splits plus the preprocessing that turns them into inputs.

    Raw samples stay in their stored dtype (MNIST: uint8 pixels); ``preprocessing``
    turns them into model inputs.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preprocessing: Preprocessing
    notes: list[str] = field(default_factory=list)
    task: str | None = None  # the task the data implies (regression targets), else None
    # what the data checks and splits.json use (loaders fill what they know)
    sample_ids: dict | None = None  # {"train": [...], "val": [...], "test": [...], "id": what}
    channel_rows: np.ndarray | None = None  # raw (rows, channels) of a sensor CSV, NaN = missing
    channel_names: list[str] | None = None
    policy: dict | None = None  # what data.checks.apply_policies did (duplicates, subset)
    shared_rows: dict | None = None  # {"train/val": windows of val sharing rows with train}
    groups: dict | None = None  # {"train": array, "val": ..., "test": ...}: each sample's group
    # {"axis": ...}: the preprocessing standardizes with statistics the loader fitted on the
    # train split over that axis (splits.standardize); None: fixed preprocessing (images /255)
    standardized: dict | None = None

    def raw(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw samples and labels of ``split`` (train/val/test): integer class indices,
        or float32 targets for regression data."""
        y = getattr(self, f"y_{split}")
        y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
        return getattr(self, f"x_{split}"), y

    def inputs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed float inputs and labels of ``split`` (train/val/test)."""
        x, y = self.raw(split)
        return self.preprocessing.apply(x), y

    def preprocessing_fitted_on(self, x: np.ndarray) -> Preprocessing:
        """The preprocessing with its standardization fitted on raw samples ``x`` instead
        of the train split (a cross-validation fold's training part); a fixed
        preprocessing is returned as it is."""
        if self.standardized is None:
            return self.preprocessing
        axis = self.standardized["axis"]
        scale, offset = standardize(x, axis=tuple(axis) if axis is not None else None)
        per_channel = self.preprocessing.per_channel
        return dataclasses.replace(self.preprocessing,
                                   scale=scale.tolist() if per_channel else float(scale),
                                   offset=offset.tolist() if per_channel else float(offset))

    def summary(self) -> DatasetSummary:
        return DatasetSummary(self.name, int(len(self.y_train)), int(len(self.y_val)),
                              int(len(self.y_test)), self.preprocessing.num_classes,
                              list(self.preprocessing.input_shape), list(self.notes))

    def split_ids(self) -> dict:
        """``splits.json``: the loader's sample ids per split, or (for a loader that has
        none) the sha256 prefix of each raw sample's bytes."""
        if self.sample_ids is not None:
            return self.sample_ids
        out = {"id": "sha256 of the raw sample's bytes (first 16 hex digits)"}
        for split in SPLITS:
            x = np.ascontiguousarray(getattr(self, f"x_{split}"))
            out[split] = [hashlib.sha256(s.tobytes()).hexdigest()[:16] for s in x]
        return out

    def fingerprint(self) -> dict:
        """sha256 of every split's raw arrays, for the run manifest."""
        out = {}
        for split in SPLITS:
            h = hashlib.sha256()
            for arr in (getattr(self, f"x_{split}"), getattr(self, f"y_{split}")):
                h.update(str(arr.dtype).encode() + str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
            out[split] = h.hexdigest()
        return out
