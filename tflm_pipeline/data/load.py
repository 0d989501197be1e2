"""One entry to every dataset: :func:`load_dataset` picks the loader for a
:class:`DataSpec` from one table (built-in name, ``.csv``, folder of images or WAV
clips, ``.npz``), in the manner of Keras' data adapters."""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..errors import TflmpError
from ..runs import RunFolder
from .builtin import load_builtin
from .checks import apply_policies
from .class_folders import folder_kind
from .dataset import Dataset
from .image_folder import load_image_spec
from .npz import load_npz_spec
from .sensor_csv import load_csv_spec
from .spec import BUILTIN_DATASETS, DataSpec
from .ts_file import is_ts_dataset, load_ts_spec, task_of_ts
from .wav_folder import load_wav_spec

_LOADERS: dict[str, Callable[[DataSpec], Dataset]] = {
    "builtin": load_builtin, "csv": load_csv_spec, "wav": load_wav_spec,
    "image": load_image_spec, "npz": load_npz_spec, "ts": load_ts_spec}


def kind_of(spec: DataSpec) -> str:
    """Which loader reads ``spec``: builtin, csv, ts, wav, image or npz."""
    path = spec.path
    if spec.dataset in BUILTIN_DATASETS:
        return "builtin"
    if path.suffix.lower() == ".csv":
        return "csv"
    if is_ts_dataset(path):
        return "ts"
    if path.is_dir():
        return folder_kind(path)
    if spec.dataset.endswith(".npz") or path.is_file():
        return "npz"
    raise TflmpError(f"unknown dataset '{spec.dataset}': use one of "
                     f"{', '.join(BUILTIN_DATASETS)}, an .npz, .csv or .ts file, a folder of "
                     ".ts files, or a folder of class folders (images or .wav)")


def task_hint(spec: DataSpec) -> str | None:
    """The task the data implies, from file headers alone: 'regression' for .ts files
    with regression targets, else None (the model decides)."""
    if kind_of(spec) == "ts" and task_of_ts(spec.path) == "regression":
        return "regression"
    return None


def load_dataset(dataset: str | DataSpec, data_dir=None, **options) -> Dataset:
    """Load ``digits``, ``mnist``, ``fashion-mnist``, an ``.npz``, a sensor ``.csv``, or a
    folder of class folders holding images or WAV clips.

    ``dataset`` is a :class:`DataSpec`, or a name or path with the other DataSpec
    fields as keywords (``load_dataset("mnist", "data/mnist", val_fraction=0.2)``).
    Cross-split duplicates and ``subset`` are handled as the spec says
    (:func:`~tflm_pipeline.data.checks.apply_policies`).
    """
    spec = dataset if isinstance(dataset, DataSpec) else DataSpec(
        str(dataset), None if data_dir is None else str(data_dir), **options)
    return apply_policies(_LOADERS[kind_of(spec)](spec), duplicates=spec.duplicates,
                          subset=spec.subset, seed=spec.seed)


def load_run_dataset(run: RunFolder) -> Dataset:
    """A run's dataset with the run's exact splits and the int8 models' preprocessing."""
    ds = load_dataset(DataSpec.of(run.config))
    pre = run.preprocessing
    return dataclasses.replace(ds, preprocessing=pre) if pre is not None else ds
