"""What data a run reads and how: :class:`DataSpec`, the data wing's typed view of a
run's settings, and the parsers of the command line's size and split notations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..errors import TflmpError
from .augment import parse_augment_kind
from .class_folders import folder_kind

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist")
DEFAULT_SPLIT = (0.7, 0.2, 0.1)
DEFAULT_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class DataSpec:
    """A dataset (built-in name or path) and the options of its file format.

    A dataset without a validation split gets one carved from train (``val_fraction``,
    stratified); one without splits is split by ``split`` (7:2:1 by default).
    """

    dataset: str
    data_dir: str | None = None
    seed: int = 0
    split: tuple[float, float, float] = DEFAULT_SPLIT
    val_fraction: float = DEFAULT_VAL_FRACTION
    # the file formats' options, with the run settings' defaults
    # sensor CSV windows
    window: int | None = RunConfig.window
    stride: int | None = RunConfig.stride
    label_column: str = RunConfig.label_column
    columns: tuple[str, ...] | None = RunConfig.columns
    # image folders
    image_size: tuple[int, int] | None = RunConfig.image_size
    color: str = RunConfig.color
    # WAV folders
    audio_features: str = RunConfig.audio_features
    clip_seconds: float = RunConfig.clip_seconds
    audio_augment: dict | None = None  # data.augment.audio_options
    # data you can trust (see data.checks); a run drops cross-split duplicates by default
    # (RunConfig.duplicates), a plain load keeps the files' samples as they are
    group_column: str | None = RunConfig.group_column
    duplicates: str = "keep"
    missing: str = RunConfig.missing
    subset: int | None = RunConfig.subset

    @classmethod
    def of(cls, config: RunConfig) -> "DataSpec":
        """The data part of a run's settings (``--augment`` parsed once, here)."""
        audio = None
        if config.augment:
            kind, options = parse_augment_kind(config.augment)
            audio = options if kind == "audio" else None
        return cls(config.dataset, config.data_dir, config.seed, config.split,
                   config.val_split, config.window, config.stride, config.label_column,
                   config.columns, config.image_size, config.color, config.audio_features,
                   config.clip_seconds, audio, config.group_column, config.duplicates,
                   config.missing, config.subset)

    @property
    def path(self) -> Path:
        return Path(self.dataset)

    def check(self) -> None:
        """The cheap checks (no file is read): a known name or an existing path, and the
        options its format needs.  Commands run this before loading TensorFlow."""
        path = self.path
        if self.group_column and self.group_column.lower() != "none" and (
                self.dataset in BUILTIN_DATASETS or path.suffix.lower() in (".npz", ".ts")
                or (path.is_dir() and any(path.glob("*_TRAIN.ts")))):
            raise TflmpError(f"--group-column applies to CSV files and folders of class "
                             f"folders; {self.dataset} names no groups: drop it")
        if self.dataset in BUILTIN_DATASETS:
            return
        if path.suffix.lower() == ".csv":
            if not path.is_file():
                raise TflmpError(f"CSV file {path} does not exist; pass the path of a CSV "
                                 "with one row per time step")
            if not self.window:
                raise TflmpError(f"{path} is a CSV of sensor samples: give the window length "
                                 "in rows with --window (and --stride)")
        elif path.suffix.lower() == ".npz":
            if not path.is_file():
                raise TflmpError(f"dataset file {path} does not exist")
        elif path.suffix.lower() == ".ts" or (path.is_dir() and any(path.glob("*_TRAIN.ts"))):
            if not path.exists():
                raise TflmpError(f".ts file {path} does not exist")
        elif path.is_dir():
            if folder_kind(path) == "image" and not self.image_size:
                raise TflmpError(f"{path} is a folder of images: give the model input size "
                                 "with --image-size HEIGHTxWIDTH")
        elif not path.exists():
            raise TflmpError(f"unknown dataset '{self.dataset}': use one of "
                             f"{', '.join(BUILTIN_DATASETS)}, an .npz, .csv or .ts file, a "
                             "folder of .ts files, or a folder of class folders (images or "
                             ".wav)")


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """``config`` with its dataset and data folder as absolute paths, so a run folder is
    usable from any working directory (built-in names stay names)."""
    changes = {}
    if config.dataset not in BUILTIN_DATASETS and Path(config.dataset).exists():
        changes["dataset"] = str(Path(config.dataset).resolve())
    if config.data_dir is not None:
        changes["data_dir"] = str(Path(config.data_dir).resolve())
    return dataclasses.replace(config, **changes)


def parse_size(size: str | tuple) -> tuple[int, int]:
    """'96x96' (or a (height, width) pair) -> (96, 96), both positive."""
    try:
        parts = size.lower().split("x") if isinstance(size, str) else size
        h, w = (int(v) for v in parts)
    except (TypeError, ValueError):
        h = w = 0
    if h < 1 or w < 1:
        shown = f"'{size}'" if isinstance(size, str) else str(size)
        raise TflmpError(f"--image-size must be two positive integers HEIGHTxWIDTH, like "
                         f"96x96; got {shown}")
    return h, w


def parse_split(text: str) -> tuple[float, float, float]:
    """'7:2:1' -> (7.0, 2.0, 1.0)."""
    try:
        parts = tuple(float(p) for p in text.split(":"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) <= 0:
        raise TflmpError(f"--split must look like 7:2:1 (train:val:test), got '{text}'")
    return parts
