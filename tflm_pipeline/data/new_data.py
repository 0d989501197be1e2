"""New data for a trained run (``tflmp verify RUN --data PATH``): a file or folder read
with the run's own format options — sensor CSV windows (window, stride, channels,
timestamps, missing cells), image size and colour, audio features, ``.ts`` cases, ``.npz``
arrays — every sample, no split, no statistics refitted; its class names mapped onto the
run's.

The loaders' own readers do the reading (:func:`.sensor_csv.read_csv_windows`,
``image_folder``'s and ``wav_folder``'s per-file readers); this module only checks the
data fits the run and finds the labels, if any."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .audio_features import FeatureParams
from .class_folders import IMAGE_SUFFIXES, class_files, flatten
from .image_folder import _read_image
from .sensor_csv import channel_columns, csv_head, read_csv_windows
from .ts_file import read_ts
from .wav_folder import _clip_features

RATE_TOLERANCE = 0.05  # a new CSV's sample rate may differ this much from the run's


@dataclass(frozen=True)
class NewData:
    """Every sample of a new file or folder, raw (the run's preprocessing makes inputs)."""

    name: str
    path: Path
    x: np.ndarray
    y: np.ndarray | None  # the run's class index (or target) of each sample; None: no labels
    sources: list[str]  # where each sample came from
    source_kind: str  # what a source is: csv_line (a window's first row), file, index, case
    classes: list[str] = field(default_factory=list)  # the run's classes the labels hold
    notes: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        return self.y is not None


def load_new_data(path: str | Path, config: RunConfig, pre: Preprocessing, *,
                  regression: bool = False) -> NewData:
    """``path`` read as the run of ``config`` and ``pre`` reads its data, or a one-line
    error saying what does not fit.  ``regression``: labels are float targets (.ts and
    .npz data), not class names."""
    path = Path(path)
    if not path.exists():
        raise TflmpError(f"--data {path} does not exist; pass a file or folder in the "
                         "format the run was trained on")
    if path.suffix.lower() == ".csv":
        return _csv(path, config, pre)
    if path.suffix.lower() == ".npz":
        return _npz(path, pre, regression)
    if path.suffix.lower() == ".ts":
        return _ts(path, pre, regression)
    if regression:
        raise TflmpError(f"--data {path}: a regression run takes .ts or .npz files with "
                         "targets")
    if path.is_dir():
        if pre.features is not None:
            return _wav_folder(path, pre)
        return _image_folder(path, pre)
    raise TflmpError(f"--data {path}: give a sensor .csv, a .ts or .npz file, or a folder of "
                     "images or .wav clips (class folders, or the files alone for predictions)")


def _csv(path: Path, config: RunConfig, pre: Preprocessing) -> NewData:
    if not config.window:
        raise TflmpError(f"--data {path} is a sensor CSV but the run was trained on "
                         f"{config.dataset}; give data in that format")
    channels = _run_channels(config)
    header = csv_head(path)[0]
    absent = [c for c in channels if c not in header]
    if absent:
        raise TflmpError(f"--data {path} lacks the run's channel column(s) "
                         f"{', '.join(absent)} (the run reads {', '.join(channels)}); add "
                         "them, named as in the training CSV")
    w = read_csv_windows(path, window=config.window, stride=config.stride or config.window,
                         label_column=config.label_column, columns=channels,
                         group_column=_group_if_present(header, config),
                         missing=config.missing, need_labels=False)
    if len(w.x) == 0:
        raise TflmpError(f"--data {path} has no complete window of {config.window} rows; "
                         "record a longer stretch")
    notes = [f"CSV {path}: {w.rows} rows, channels {', '.join(channels)}; windows of "
             f"{w.window} rows every {w.stride} ({len(w.x)} kept, {w.skipped} crossing a "
             "change skipped); standardized with the run's train statistics", *w.notes]
    if pre.sample_rate_hz and w.rate:
        if abs(w.rate - pre.sample_rate_hz) > RATE_TOLERANCE * pre.sample_rate_hz:
            raise TflmpError(f"--data {path} is sampled at {w.rate:g} Hz but the run at "
                             f"{pre.sample_rate_hz:g} Hz; resample it to "
                             f"{pre.sample_rate_hz:g} Hz")
    elif pre.sample_rate_hz:
        notes.append(f"no timestamp column: the {pre.sample_rate_hz:g} Hz the run was "
                     "trained at is assumed")
    y, classes = None, []
    if w.y is not None:
        y, classes, note = _to_run_classes(path, w.labels, w.y, pre.labels)
        notes.append(note)
    else:
        notes.append(f"no '{config.label_column}' column: predictions only")
    return NewData(path.stem, path, w.x, y, [str(i) for i in w.ids],
                   "csv_line", classes, notes)


def _run_channels(config: RunConfig) -> list[str]:
    """The channel columns the run was trained on (its --columns, else its CSV's)."""
    if config.columns:
        return list(config.columns)
    if not Path(config.dataset).is_file():
        raise TflmpError(f"the run's training CSV {config.dataset} is gone, so its channel "
                         "columns are unknown; restore the file")
    return channel_columns(config.dataset, label_column=config.label_column,
                           group_column=config.group_column)


def _group_if_present(header: list[str], config: RunConfig) -> str | None:
    """The run's --group-column when the new file has it (it only ends windows here)."""
    named = config.group_column
    if not named or named.lower() == "none":
        return named
    return named if named in header else "none"


def _image_folder(path: Path, pre: Preprocessing) -> NewData:
    shape = pre.input_shape
    if not (pre.raw_dtype == "uint8" and len(shape) == 3 and shape[-1] in (1, 3)
            and np.isclose(np.asarray(pre.scale, np.float64), 1 / 255).all()):
        raise TflmpError(f"--data {path} is a folder but the run ({pre.dataset}) was not "
                         "trained on images of pixel / 255; give data in the run's format "
                         "(an .npz of raw samples)")
    files, labels, y = _folder_files(path, IMAGE_SUFFIXES, "image")
    mode = "L" if shape[-1] == 1 else "RGB"
    x = np.stack([_read_image(f, tuple(shape[:2]), mode) for f in files])
    notes = [f"images from {path}: {len(files)}, resized to {shape[0]}x{shape[1]} "
             f"{'grayscale' if mode == 'L' else 'rgb'} (Pillow bilinear), as the run's"]
    return _labelled(path, x, files, labels, y, pre, notes)


def _wav_folder(path: Path, pre: Preprocessing) -> NewData:
    features = pre.features
    files, labels, y = _folder_files(path, (".wav",), "WAV clip")
    params = FeatureParams.from_dict(features)
    x, _, fitted = _clip_features(files, int(features["clip_samples"]), features["type"],
                                  params, None, np.random.default_rng(0), [])
    notes = [f"WAV clips from {path}: {len(files)}, {features['clip_seconds']:g} s at "
             f"{params.sample_rate} Hz ({fitted[0]} shorter padded, {fitted[1]} longer "
             f"trimmed); {features['type']} as the run's"]
    return _labelled(path, x, files, labels, y, pre, notes)


def _folder_files(path: Path, suffixes: tuple[str, ...], kind: str):
    """(files, class names or None, class index per file or None): class folders give
    labels; a flat folder of files gives none."""
    loose = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    has_classes = any(d.is_dir() and not d.name.startswith((".", "_")) for d in path.iterdir())
    if loose and not has_classes:
        return loose, None, None
    if not has_classes:
        raise TflmpError(f"--data {path} holds no {kind}s: put them in class folders "
                         f"({path}/<class>/) or, for predictions only, in {path} itself")
    folders = class_files(path, suffixes, kind)
    labels = sorted(folders)
    files, y = flatten(folders, labels)
    return files, labels, y


def _labelled(path, x, files, labels, y, pre, notes) -> NewData:
    sources = [f.relative_to(path).as_posix() for f in files]
    if labels is None:
        return NewData(path.name, path, x, None, sources, "file", [],
                       notes + ["no class folders: predictions only"])
    y, classes, note = _to_run_classes(path, labels, y, pre.labels)
    return NewData(path.name, path, x, y, sources, "file", classes, notes + [note])


def _npz(path: Path, pre: Preprocessing, regression: bool) -> NewData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise TflmpError(f"cannot read {path} as .npz: {e}") from None
    key = next((k for k in ("x", "x_test") if k in arrays), None)
    if key is None:
        raise TflmpError(f"--data {path} needs an array x (and y for labels); it has "
                         f"{sorted(arrays)}")
    x = arrays[key]
    size = int(np.prod(pre.input_shape))
    if x.ndim == 0 or int(np.prod(x.shape[1:])) != size:
        raise TflmpError(f"--data {path}: samples of shape {list(x.shape[1:])} do not fit the "
                         f"run's input {list(pre.input_shape)}; give raw samples as the run "
                         "was trained on")
    sources = [str(i) for i in range(len(x))]
    notes = [f"arrays from {path}: {len(x)} samples of {list(x.shape[1:])}"]
    y_key = "y" if key == "x" else "y_test"
    if y_key not in arrays:
        return NewData(path.stem, path, x, None, sources, "index", [],
                       notes + [f"no {y_key} array: predictions only"])
    y = np.asarray(arrays[y_key]).reshape(len(x), -1)
    if regression:
        if y.shape[1] != pre.num_classes:
            raise TflmpError(f"--data {path}: {y_key} holds {y.shape[1]} target(s) per sample; "
                             f"the run predicts {pre.num_classes}")
        return NewData(path.stem, path, x, y.astype(np.float32), sources, "index", [],
                       notes + ["regression targets"])
    y = y.argmax(axis=1) if y.shape[1] > 1 else y[:, 0]
    if "labels" in arrays:
        names = [str(s) for s in arrays["labels"]]
    else:
        if y.min() < 0 or y.max() >= pre.num_classes:
            raise TflmpError(f"--data {path}: labels must lie in 0..{pre.num_classes - 1} (the "
                             f"run's classes), found {int(y.min())}..{int(y.max())}")
        names = list(pre.labels)
    y, classes, note = _to_run_classes(path, names, y.astype(np.int64), pre.labels)
    return NewData(path.stem, path, x, y, sources, "index", classes, notes + [note])


def _ts(path: Path, pre: Preprocessing, regression: bool) -> NewData:
    ts = read_ts(path)
    if (ts.classes is None) != regression:
        raise TflmpError(f"--data {path} holds "
                         f"{'regression targets' if ts.classes is None else 'class labels'}; "
                         f"the run {'predicts values' if regression else 'classifies'}")
    if ts.x.shape[1:] != tuple(pre.input_shape):
        raise TflmpError(f"--data {path}: cases of {list(ts.x.shape[1:])} (steps, channels); "
                         f"the run takes {list(pre.input_shape)}")
    notes = [f".ts series {path}: {len(ts.y)} cases"]
    sources = [str(i) for i in range(len(ts.y))]
    if regression:
        return NewData(path.stem, path, ts.x, ts.y, sources, "case", [],
                       notes + ["regression targets"])
    y, classes, note = _to_run_classes(path, ts.classes, ts.y, pre.labels)
    return NewData(path.stem, path, ts.x, y, sources, "case", classes, notes + [note])


def _to_run_classes(where, names: list[str], y: np.ndarray, run_labels: list[str]):
    """The data's class indices (into ``names``) as the run's, the run's classes present,
    and a note; unknown class names are a one-line error naming them."""
    present = sorted({names[i] for i in np.unique(y)}, key=names.index)
    unknown = [n for n in present if n not in run_labels]
    if unknown:
        raise TflmpError(f"--data {where} has class(es) {', '.join(map(repr, unknown))} the "
                         f"run was not trained on (its classes: {', '.join(run_labels)}); "
                         "remove or rename them")
    index = np.array([run_labels.index(n) if n in run_labels else -1 for n in names])
    classes = [n for n in run_labels if n in present]
    if len(classes) == len(run_labels):
        note = f"labels: all {len(run_labels)} of the run's classes"
    else:
        note = (f"labels: {len(classes)} of the run's {len(run_labels)} classes "
                f"({', '.join(classes)}); the others are not in this data")
    return index[y], classes, note
