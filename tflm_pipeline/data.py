"""Data stage: load a dataset, split it train/val/test, and describe its preprocessing.

Raw samples stay in their stored dtype (MNIST: uint8 pixels).  :class:`Preprocessing`
is the single description of how a raw sample becomes a model input; it is saved with
each run and reused for training, int8 calibration, the TFLM harness and the
constants emitted to C, so training and device can never disagree.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import write_json
from .errors import TflmpError

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist")
DEFAULT_SPLIT = (0.7, 0.2, 0.1)
DEFAULT_VAL_FRACTION = 0.1

_FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@dataclass
class Preprocessing:
    """How a raw sample becomes a model input: ``x = raw * scale + offset``, reshaped.

    ``scale`` and ``offset`` are one number, or one per channel (the last axis, e.g.
    per-sensor-axis standardization).  ``raw_dtype`` is the dtype samples arrive in (on
    the device too); ``labels`` names the classes in output order.  ``features``
    records how raw signals became the stored samples (audio: the log-mel or MFCC
    parameters), so firmware can compute the same.
    """

    dataset: str
    input_shape: tuple[int, ...]
    raw_dtype: str
    scale: float | list[float]
    offset: float | list[float]
    labels: list[str]
    features: dict | None = None

    @property
    def per_channel(self) -> bool:
        return isinstance(self.scale, list) or isinstance(self.offset, list)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw samples (N, ...) -> float32 model inputs (N, *input_shape)."""
        raw = np.asarray(raw)
        size = int(np.prod(self.input_shape))
        if raw.ndim == 0 or int(np.prod(raw.shape[1:])) != size:
            raise TflmpError(f"samples of shape {list(raw.shape[1:])} do not fit the input "
                             f"shape {list(self.input_shape)} of this preprocessing "
                             f"({self.dataset}); use the data the model was trained on")
        x = raw.reshape((-1, *self.input_shape)).astype(np.float32)
        return x * np.asarray(self.scale, np.float32) + np.asarray(self.offset, np.float32)

    def then(self, scale, offset) -> "Preprocessing":
        """This preprocessing followed by ``x * scale + offset`` (numbers or per-channel)."""
        def plain(v):
            v = np.asarray(v, np.float32)
            return float(v) if v.ndim == 0 else [float(a) for a in v]

        new_scale = np.asarray(self.scale, np.float32) * np.asarray(scale, np.float32)
        new_offset = (np.asarray(self.offset, np.float32) * np.asarray(scale, np.float32)
                      + np.asarray(offset, np.float32))
        return Preprocessing(self.dataset, self.input_shape, self.raw_dtype, plain(new_scale),
                             plain(new_offset), self.labels, self.features)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        def number_or_list(v):
            return [float(x) for x in v] if isinstance(v, list) else float(v)

        return cls(dataset=d["dataset"], input_shape=tuple(d["input_shape"]),
                   raw_dtype=d["raw_dtype"], scale=number_or_list(d["scale"]),
                   offset=number_or_list(d["offset"]), labels=list(d["labels"]),
                   features=d.get("features"))

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Preprocessing":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TflmpError(f"cannot read preprocessing file {path}: {e}; "
                             "use the preprocessing.json written by 'tflmp train'") from None


@dataclass
class Dataset:
    """Raw train/val/test splits plus the preprocessing that turns them into inputs."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preprocessing: Preprocessing
    notes: list[str] = field(default_factory=list)

    def inputs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed float inputs and integer labels of ``split`` (train/val/test)."""
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        return self.preprocessing.apply(x), y.astype(np.int64)

    def summary(self) -> dict:
        return {"name": self.name, "train": int(len(self.y_train)), "val": int(len(self.y_val)),
                "test": int(len(self.y_test)), "classes": self.preprocessing.num_classes,
                "input_shape": list(self.preprocessing.input_shape), "notes": self.notes}

    def fingerprint(self) -> dict:
        """sha256 of every split's raw arrays, for the run manifest."""
        out = {}
        for split in ("train", "val", "test"):
            h = hashlib.sha256()
            for arr in (getattr(self, f"x_{split}"), getattr(self, f"y_{split}")):
                h.update(str(arr.dtype).encode() + str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
            out[split] = h.hexdigest()
        return out


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, seed: int = 0,
                 split: tuple[float, float, float] = DEFAULT_SPLIT,
                 val_fraction: float = DEFAULT_VAL_FRACTION,
                 files: dict | None = None) -> Dataset:
    """Load ``digits``, ``mnist``, ``fashion-mnist``, an ``.npz``, a sensor ``.csv``, or a
    folder of class folders holding images or WAV clips.

    A dataset without a validation split gets one carved from train (``val_fraction``,
    stratified); one without splits is split by ``split`` (7:2:1 default).  ``files``
    holds the options of the file formats (window, stride, label_column, columns,
    image_size, color, audio_features, clip_seconds, audio_augment).
    """
    from . import data_files

    f = files or {}
    path = Path(name)
    if name == "digits":
        return _digits(seed, split)
    if name in ("mnist", "fashion-mnist"):
        return _idx_dataset(name, data_dir, seed, val_fraction)
    if path.suffix.lower() == ".csv":
        if not f.get("window"):
            raise TflmpError(f"{name} is a CSV of sensor samples: give the window length in "
                             "rows with --window (and --stride)")
        return data_files.load_csv_windows(
            path, window=f["window"], stride=f.get("stride") or f["window"],
            label_column=f.get("label_column", "label"), columns=f.get("columns"), seed=seed,
            split=split)
    if path.is_dir():
        kind = data_files.folder_kind(path)
        if kind == "wav":
            return data_files.load_wav_folder(
                path, features=f.get("audio_features", "mfcc"),
                clip_seconds=f.get("clip_seconds", 1.0), seed=seed, split=split,
                augment=f.get("audio_augment"))
        if not f.get("image_size"):
            raise TflmpError(f"{name} is a folder of images: give the model input size with "
                             "--image-size HEIGHTxWIDTH")
        return data_files.load_image_folder(path, size=f["image_size"],
                                            color=f.get("color", "grayscale"), seed=seed,
                                            split=split, val_fraction=val_fraction)
    if name.endswith(".npz") or path.is_file():
        return _npz_dataset(path, seed, split, val_fraction)
    raise TflmpError(f"unknown dataset '{name}': use one of {', '.join(BUILTIN_DATASETS)}, an "
                     ".npz or .csv file, or a folder of class folders (images or .wav)")


def default_preprocessing(name: str) -> Preprocessing | None:
    """The preprocessing a built-in dataset uses by default (None for .npz files)."""
    if name == "digits":
        return Preprocessing("digits", (8, 8, 1), "uint8", 1.0 / 16.0, 0.0,
                             [str(i) for i in range(10)])
    if name in ("mnist", "fashion-mnist"):
        labels = _FASHION_LABELS if name == "fashion-mnist" else [str(i) for i in range(10)]
        return Preprocessing(name, (28, 28, 1), "uint8", 1.0 / 255.0, 0.0, labels)
    return None


# --- built-in datasets ---------------------------------------------------------------

def _digits(seed, split) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.uint8)  # values 0..16
    y = d.target.astype(np.int64)
    parts = _split_three(x, y, split, seed)
    return Dataset("digits", *parts, preprocessing=default_preprocessing("digits"),
                   notes=[f"scikit-learn digits (1,797 8x8 images), split "
                          f"{_ratio(split)} stratified, seed {seed}"])


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
            return _npz_dataset(cached_npz, seed, DEFAULT_SPLIT, val_fraction,
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
    x_tr, y_tr, x_va, y_va = _split_two(arrays["x_train"], arrays["y_train"].astype(np.int64),
                                        val_fraction, seed)
    pre = default_preprocessing(name)
    _check_labels(y_tr, pre.num_classes, str(data_dir))
    return Dataset(name, x_tr, y_tr, x_va, y_va, arrays["x_test"],
                   arrays["y_test"].astype(np.int64), preprocessing=pre,
                   notes=[f"idx files from {data_dir}; validation = {val_fraction:.0%} of "
                          f"train, stratified, seed {seed}"])


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


# --- .npz files ----------------------------------------------------------------------

def _npz_dataset(path: Path, seed, split, val_fraction, name=None, pre=None) -> Dataset:
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
    if have_test:
        x_te, y_te = arrays["x_test"], _labels_1d(arrays["y_test"], path)
        if "x_val" in arrays and "y_val" in arrays:
            x_tr, y_tr, x_va, y_va = x, y, arrays["x_val"], _labels_1d(arrays["y_val"], path)
        else:
            x_tr, y_tr, x_va, y_va = _split_two(x, y, val_fraction, seed)
            notes.append(f"validation = {val_fraction:.0%} of train, stratified, seed {seed}")
    else:
        x_tr, y_tr, x_va, y_va, x_te, y_te = _split_three(x, y, split, seed)
        notes.append(f"one array pair split {_ratio(split)} stratified, seed {seed}")
    for split_name, xs, ys in (("train", x_tr, y_tr), ("val", x_va, y_va), ("test", x_te, y_te)):
        _check_labels(ys, num_classes, f"{path} ({split_name})")
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
    return Dataset(name, x_tr, y_tr, x_va, y_va, x_te, y_te, preprocessing=pre, notes=notes)


def _labels_1d(y: np.ndarray, path) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise TflmpError(f"{path}: labels must be integer class indices")
    return y.astype(np.int64)


def _check_labels(y: np.ndarray, num_classes: int, where: str) -> None:
    if len(y) == 0:
        raise TflmpError(f"{where}: a split is empty; provide more samples")
    if y.min() < 0 or y.max() >= num_classes:
        raise TflmpError(f"{where}: labels must lie in 0..{num_classes - 1}, "
                         f"found {int(y.min())}..{int(y.max())}")


# --- splitting -----------------------------------------------------------------------

def _stratify(y):
    _, counts = np.unique(y, return_counts=True)
    return y if counts.min() >= 2 else None


def _split_two(x, y, val_fraction, seed):
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise TflmpError(f"--val-split must be between 0 and 1, got {val_fraction}")
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=max(1, round(len(y) * val_fraction)),
                                              random_state=seed, stratify=_stratify(y))
    return x_tr, y_tr, x_va, y_va


def _split_three(x, y, split, seed):
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


def _ratio(split) -> str:
    return ":".join(f"{p:g}" for p in split)


def parse_size(text: str) -> tuple[int, int]:
    """'96x96' -> (96, 96)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        h = w = 0
    if h < 1 or w < 1:
        raise TflmpError(f"--image-size must look like 96x96 (HEIGHTxWIDTH), got '{text}'")
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
