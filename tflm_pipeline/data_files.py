"""Loaders for the user's own files: sensor CSVs, image folders and WAV folders.

Each returns a :class:`~tflm_pipeline.data.Dataset` with a :class:`Preprocessing` that
says how a raw sample becomes a model input.  A source without its own splits is split
train/val/test (``split``, 7:2:1 by default), stratified and seeded, by the same
helpers as :mod:`tflm_pipeline.data`; normalization statistics come from the train
split only.  Class folders hold one class each, named by the folder; folders whose
name starts with ``.`` or ``_`` (such as Speech Commands' ``_background_noise_``) are
ignored.  Only NumPy, Pillow and the standard library are used, so loading stays fast.
"""

from __future__ import annotations

import csv
import os
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .audio_features import FEATURE_TYPES, FeatureParams, compute
from .augment import audio_options, augment_clips
from .data import (DEFAULT_SPLIT, DEFAULT_VAL_FRACTION, Dataset, Preprocessing, _split_three,
                   _split_two)
from .errors import TflmpError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SESSION_COLUMNS = ("session", "file")
PCM_SCALE = 1.0 / 32768.0  # 16-bit PCM sample -> float in [-1, 1)
_FEATURE_CHUNK = 256  # clips per feature computation: bounds memory on large folders

PathLike = str | os.PathLike


# --- sensor CSV windows --------------------------------------------------------------

def load_csv_windows(path: PathLike, *, window: int, stride: int, label_column: str = "label",
                     columns: list[str] | None = None, seed: int = 0,
                     split: tuple[float, float, float] = DEFAULT_SPLIT) -> Dataset:
    """Windows of ``window`` consecutive rows every ``stride`` rows of a sensor CSV.

    One row per time step: numeric channel columns (``columns``, default all but the
    label and session columns) and ``label_column``.  A window whose rows do not all
    share one label is skipped; a ``session`` or ``file`` column starts the windows
    afresh wherever its value changes, so no window spans two recordings.  Samples are
    float32 (window, channels), standardized per channel with train-split statistics.
    """
    path = Path(path)
    window, stride = _positive_int("--window", window), _positive_int("--stride", stride)
    header, lines, rows = _read_csv(path)
    if label_column not in header:
        raise TflmpError(f"{path} has no label column '{label_column}' (columns: "
                         f"{', '.join(header)}); name it with --label-column")
    session = next((c for c in header if c.lower() in SESSION_COLUMNS), None)
    channels = list(columns) if columns else [c for c in header
                                              if c not in (label_column, session)]
    missing = [c for c in channels if c not in header]
    if missing:
        raise TflmpError(f"{path} has no column(s) {', '.join(missing)} (columns: "
                         f"{', '.join(header)}); list channel columns with --columns")
    if not channels:
        raise TflmpError(f"{path} has no channel columns besides '{label_column}'"
                         f"{' and ' + repr(session) if session else ''}; add the sensor columns")
    if len(rows) < window:
        raise TflmpError(f"{path} has {len(rows)} data rows, fewer than --window {window}; "
                         "use a smaller window or a longer recording")
    values = np.stack([_numeric_column(path, header, lines, rows, c) for c in channels], axis=1)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        raise TflmpError(f"{path}:{lines[bad[0]]}: the row holds NaN or inf; remove or fill it")
    labels, y_rows = _label_ids(path, lines, [row[header.index(label_column)] for row in rows])
    groups = [row[header.index(session)] for row in rows] if session else None
    starts, run_of, skipped = _window_starts(y_rows, groups, window, stride)
    y = y_rows[starts]
    for class_id, name in enumerate(labels):
        if not np.any(y == class_id):
            longest = np.bincount(run_of[y_rows == class_id]).max()
            raise TflmpError(f"{path}: class '{name}' has no complete window of {window} rows "
                             f"(its longest unbroken run is {longest} rows); use a smaller "
                             f"--window or record more '{name}' data")
    x = values[starts[:, None] + np.arange(window)].astype(np.float32)
    parts = _split_arrays(x, y, seed, split, path)
    scale, offset = _standardize(parts[0], axis=(0, 1))
    pre = Preprocessing(path.stem, (window, len(channels)), "float32", scale.tolist(),
                        offset.tolist(), labels)
    breaks = "label or session" if session else "label"
    notes = [f"CSV {path}: {len(rows)} rows, channels {', '.join(channels)}; windows of "
             f"{window} rows every {stride} ({len(starts)} kept, {skipped} crossing a {breaks} "
             f"change skipped); {_split_note(split, seed)}; standardized per channel on train"]
    if stride < window:
        notes.append(f"windows overlap by {window - stride} rows, so neighbouring windows "
                     "can fall in different splits: val/test accuracy is optimistic")
    return Dataset(path.stem, *parts, preprocessing=pre, notes=notes)


def _read_csv(path: Path) -> tuple[list[str], list[int], list[list[str]]]:
    """Header, line number of each data row, and the data rows (blank lines skipped)."""
    if not path.is_file():
        raise TflmpError(f"CSV file {path} does not exist; pass the path of a CSV with one "
                         "row per time step")
    header, lines, rows = None, [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                if not any(row):
                    continue
                if header is None:
                    header = [cell.strip() for cell in row]
                elif len(row) != len(header):
                    raise TflmpError(f"{path}:{reader.line_num}: {len(row)} fields but the "
                                     f"header has {len(header)}; fix that row")
                else:
                    lines.append(reader.line_num)
                    rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TflmpError(f"cannot read {path} as a UTF-8 CSV file: {e}") from None
    if header is None or not rows:
        raise TflmpError(f"{path} has no data rows; it needs a header line and one row per "
                         "time step")
    return header, lines, rows


def _numeric_column(path, header, lines, rows, name) -> np.ndarray:
    j = header.index(name)
    cells = [row[j] for row in rows]
    try:
        return np.fromiter(map(float, cells), np.float64, len(cells))
    except ValueError:
        for line, cell in zip(lines, cells):
            try:
                float(cell)
            except ValueError:
                raise TflmpError(f"{path}:{line}: column '{name}' holds '{cell}', not a "
                                 "number; fix the cell or leave the column out with "
                                 "--columns") from None
        raise


def _label_ids(path, lines, cells) -> tuple[list[str], np.ndarray]:
    """Sorted label names (numerically when all are integers) and each row's index."""
    cells = [c.strip() for c in cells]
    if "" in cells:
        raise TflmpError(f"{path}:{lines[cells.index('')]}: the label cell is empty; "
                         "give every row a label")
    try:
        cells = [str(int(c)) for c in cells]
        names = sorted(set(cells), key=int)
    except ValueError:
        names = sorted(set(cells))
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[c] for c in cells], np.int64)


def _window_starts(y, groups, window, stride):
    """Start rows of the windows inside one label run, the run id of every row, and how
    many windows were skipped for crossing a label or session change."""
    n = len(y)
    new_group = np.zeros(n, bool)
    new_group[0] = True
    if groups is not None:
        g = np.asarray(groups)
        new_group[1:] = g[1:] != g[:-1]
    run_of = np.cumsum(new_group | np.r_[False, y[1:] != y[:-1]])
    bounds = np.r_[np.flatnonzero(new_group), n]
    starts = np.concatenate([np.arange(a, b - window + 1, stride)
                             for a, b in zip(bounds[:-1], bounds[1:])])
    keep = run_of[starts] == run_of[starts + window - 1]
    return starts[keep], run_of, int((~keep).sum())


# --- image folders -------------------------------------------------------------------

def load_image_folder(path: PathLike, *, size: tuple[int, int], color: str = "grayscale",
                      seed: int = 0, split: tuple[float, float, float] = DEFAULT_SPLIT,
                      val_fraction: float = DEFAULT_VAL_FRACTION) -> Dataset:
    """Images in class folders (``class/*.png|jpg|jpeg|bmp``), resized to ``size`` (H, W).

    Samples are uint8 (H, W, 1) for ``grayscale`` or (H, W, 3) for ``rgb`` (Pillow
    bilinear resize, EXIF orientation applied); inputs are ``pixel / 255``.  A folder
    with ``train/`` and ``test/`` (and optionally ``val/``) subfolders of class folders
    keeps those splits, validation carved from train (``val_fraction``) when absent;
    otherwise the images are split by ``split``.
    """
    root = _folder(path, "image")
    height, width = size_hw = _image_size(size)
    if color not in ("grayscale", "rgb"):
        raise TflmpError(f"--color must be grayscale or rgb, got '{color}'")
    mode = "L" if color == "grayscale" else "RGB"
    present = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    if "train" in present and "test" in present:
        folders = {s: _class_files(root / s, IMAGE_SUFFIXES, "image") for s in present}
        labels = sorted(folders["train"])
        for s in present:
            extra = sorted(set(folders[s]) - set(labels))
            if extra:
                raise TflmpError(f"{root / s} has class folder(s) {', '.join(extra)} that "
                                 f"{root / 'train'} lacks; add training images for them or "
                                 "remove them")
        files = {s: _flatten(folders[s], labels) for s in present}
        if "val" not in present:
            tr, va = _split_indices(files["train"][1], seed, None, root, val_fraction)
            train_files, train_y = files["train"]
            files["train"] = [train_files[i] for i in tr], train_y[tr]
            files["val"] = [train_files[i] for i in va], train_y[va]
        how = ("train/, val/ and test/ folders" if "val" in present else
               f"train/ and test/ folders; validation = {val_fraction:.0%} of train, "
               f"stratified, seed {seed}")
    elif present:
        raise TflmpError(f"{root} has a {present[0]}/ folder but no "
                         f"{'test' if present[0] != 'test' else 'train'}/ folder; give it both "
                         "train/ and test/ (each with class folders) or only class folders")
    else:
        folders = _class_files(root, IMAGE_SUFFIXES, "image")
        labels = sorted(folders)
        all_files, all_y = _flatten(folders, labels)
        parts = _split_indices(all_y, seed, split, root)
        files = {s: ([all_files[i] for i in idx], all_y[idx])
                 for s, idx in zip(("train", "val", "test"), parts)}
        how = _split_note(split, seed)
    arrays = []
    for s in ("train", "val", "test"):
        arrays += [np.stack([_read_image(f, size_hw, mode) for f in files[s][0]]),
                   files[s][1]]
    pre = Preprocessing(root.name, (height, width, len(mode)), "uint8", 1.0 / 255.0, 0.0, labels)
    count = sum(len(files[s][1]) for s in files)
    return Dataset(root.name, *arrays, preprocessing=pre,
                   notes=[f"images from {root}: {count} in {len(labels)} class folders, "
                          f"resized to {height}x{width} {color} (Pillow bilinear); {how}"])


def _read_image(file: Path, size_hw: tuple[int, int], mode: str) -> np.ndarray:
    try:
        with Image.open(file) as img:
            img = ImageOps.exif_transpose(img).convert(mode)
            img = img.resize(size_hw[::-1], Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise TflmpError(f"cannot read image {file}: {e}; replace or delete the file") from None
    return np.asarray(img, np.uint8).reshape(*size_hw, len(mode))


def _image_size(size) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise TflmpError(f"--image-size must be two positive integers HEIGHTxWIDTH, got {size}")
    return height, width


# --- WAV folders ---------------------------------------------------------------------

def load_wav_folder(path: PathLike, *, features: str = "mfcc", clip_seconds: float = 1.0,
                    seed: int = 0, split: tuple[float, float, float] = DEFAULT_SPLIT,
                    augment: dict | None = None, params: FeatureParams | None = None) -> Dataset:
    """Clips in class folders (``class/*.wav``, 16-bit mono PCM) as log-mel or MFCC features.

    Clips are zero-padded or trimmed to ``clip_seconds``; samples are float32
    (frames, coefficients, 1), standardized by the train split's mean and std.
    ``augment`` (see :func:`tflm_pipeline.augment.parse_augment`) adds shifted / noisy
    copies of every training clip, seeded; validation and test are never augmented.
    """
    root = _folder(path, "audio")
    params = params or FeatureParams()
    if features not in FEATURE_TYPES:
        raise TflmpError(f"unknown audio features '{features}': use mfcc or log-mel")
    clip = int(round(clip_seconds * params.sample_rate))
    if params.num_frames(clip) == 0:
        raise TflmpError(f"--clip-seconds {clip_seconds} is shorter than one "
                         f"{params.frame_length_ms:g} ms frame; use a longer clip")
    options = audio_options(augment) if augment is not None else None
    folders = _class_files(root, (".wav",), "WAV clip")
    labels = sorted(folders)
    all_files, all_y = _flatten(folders, labels)
    parts = _split_indices(all_y, seed, split, root)
    noise = _noise_clips(options["noise_dir"], params) if options else []
    rng = np.random.default_rng(seed)
    arrays, fitted = [], np.zeros(2, np.int64)  # clips padded, clips trimmed
    for name, idx in zip(("train", "val", "test"), parts):
        train_options = options if name == "train" else None
        x, copies, counts = _clip_features([all_files[i] for i in idx], clip, features, params,
                                           train_options, rng, noise)
        y, fitted = all_y[idx], fitted + counts
        if train_options:
            x = np.concatenate([x, copies])
            y = np.concatenate([y, np.repeat(y, train_options["copies"])])
        arrays += [x, y]
    scale, offset = _standardize(arrays[0], axis=None)
    feature_dict = {**params.to_dict(features), "clip_seconds": clip_seconds,
                    "clip_samples": clip, "pcm_scale": PCM_SCALE}
    pre = Preprocessing(root.name, arrays[0].shape[1:], "float32", float(scale), float(offset),
                        labels, features=feature_dict)
    notes = [f"WAV clips from {root}: {len(all_y)} in {len(labels)} class folders, "
             f"{clip_seconds:g} s at {params.sample_rate} Hz ({fitted[0]} shorter padded, "
             f"{fitted[1]} longer trimmed); {features} {arrays[0].shape[1]}x"
             f"{arrays[0].shape[2]}; {_split_note(split, seed)}; standardized on train"]
    if options:
        noise_text = (f", noise from {options['noise_dir']} at {options['noise_snr_db'][0]:g}-"
                      f"{options['noise_snr_db'][1]:g} dB SNR" if noise else "")
        notes.append(f"train augmented offline: {options['copies']} copies per clip (time "
                     f"shift up to +-{options['time_shift_ms']:g} ms{noise_text}), seed {seed}")
    return Dataset(root.name, *arrays, preprocessing=pre, notes=notes)


def read_wav(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """A 16-bit mono PCM WAV file as float32 samples in [-1, 1)."""
    fix = (f"expected {sample_rate} Hz mono 16-bit PCM: convert it, e.g. "
           f"'sox IN.wav -r {sample_rate} -c 1 -b 16 OUT.wav'")
    try:
        with wave.open(str(path), "rb") as w:
            found = (w.getframerate(), w.getnchannels(), w.getsampwidth())
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise TflmpError(f"cannot read {path} as a PCM WAV file ({e}); {fix}") from None
    if found != (sample_rate, 1, 2):
        raise TflmpError(f"{path} is {found[0]} Hz, {found[1]} channel(s), {8 * found[2]}-bit; "
                         f"{fix}")
    return np.frombuffer(data[:len(data) // 2 * 2], "<i2").astype(np.float32) * PCM_SCALE


def _clip_features(files, clip, kind, params, options, rng, noise):
    """Features (N, frames, coefficients, 1) of the clips; those of their augmented copies
    when ``options`` is given (else None); and how many clips were padded / trimmed."""
    plain, augmented, counts = [], [], np.zeros(2, np.int64)
    for start in range(0, len(files), _FEATURE_CHUNK):
        chunk = files[start:start + _FEATURE_CHUNK]
        waves = np.zeros((len(chunk), clip), np.float32)
        for row, file in enumerate(chunk):
            samples = read_wav(file, params.sample_rate)
            counts += (len(samples) < clip, len(samples) > clip)
            waves[row, :min(clip, len(samples))] = samples[:clip]
        plain.append(compute(waves, kind, params)[..., None])
        if options:
            copies = augment_clips(waves, options, params.sample_rate, rng, noise)
            augmented.append(compute(copies, kind, params)[..., None])
    return np.concatenate(plain), np.concatenate(augmented) if options else None, counts


def _noise_clips(noise_dir, params: FeatureParams) -> list[np.ndarray]:
    if noise_dir is None:
        return []
    folder = Path(noise_dir)
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() == ".wav") \
        if folder.is_dir() else []
    if not files:
        raise TflmpError(f"noise folder {folder} has no .wav files; point --augment noise=DIR "
                         "at a folder of background-noise recordings")
    return [read_wav(f, params.sample_rate) for f in files]


# --- shared --------------------------------------------------------------------------

def folder_kind(path: PathLike) -> str:
    """'wav' or 'image': what the class folders under ``path`` (or its train/) hold."""
    root = Path(path)
    if (root / "train").is_dir():
        root = root / "train"
    suffixes = {f.suffix.lower() for d in root.iterdir() if d.is_dir()
                for f in d.iterdir() if f.is_file()}
    if ".wav" in suffixes:
        return "wav"
    if suffixes & set(IMAGE_SUFFIXES):
        return "image"
    raise TflmpError(f"{path} holds no class folders of images ({', '.join(IMAGE_SUFFIXES)}) "
                     "or .wav clips: put each class's files in PATH/<class name>/")


def _folder(path: PathLike, kind: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise TflmpError(f"{kind} folder {root} does not exist or is not a folder; pass a "
                         "folder of class folders")
    return root


def _class_files(folder: Path, suffixes: tuple[str, ...], kind: str) -> dict[str, list[Path]]:
    """{class name: sorted files with one of ``suffixes``} for every class folder."""
    classes = sorted(d for d in folder.iterdir()
                     if d.is_dir() and not d.name.startswith((".", "_")))
    if not classes:
        raise TflmpError(f"{folder} has no class folders: put each class's {kind}s in "
                         f"{folder}/<class name>/")
    out = {}
    for d in classes:
        out[d.name] = sorted(f for f in d.iterdir()
                             if f.is_file() and f.suffix.lower() in suffixes)
        if not out[d.name]:
            raise TflmpError(f"class folder {d} has no {'/'.join(suffixes)} files; add "
                             f"{kind}s to it or remove it")
    return out


def _flatten(folders: dict[str, list[Path]], labels: list[str]) -> tuple[list[Path], np.ndarray]:
    files = [f for name in labels for f in folders.get(name, [])]
    y = np.array([i for i, name in enumerate(labels) for _ in folders.get(name, [])], np.int64)
    return files, y


def _positive_int(option: str, value) -> int:
    if isinstance(value, bool) or value != int(value) or value < 1:
        raise TflmpError(f"{option} must be a positive whole number, got {value}")
    return int(value)


def _split_indices(y, seed, split, where, val_fraction=None):
    """Indices of train/val/test by ``split`` (or train/val by ``val_fraction``)."""
    idx = np.arange(len(y))
    try:
        if val_fraction is not None:
            return _split_two(idx, y, val_fraction, seed)[0::2]
        return _split_three(idx, y, split, seed)[0::2]
    except ValueError as e:
        raise TflmpError(f"{where}: {len(y)} samples in {len(np.unique(y))} classes are too few "
                         f"to split ({e}); add data or change --split") from None


def _split_arrays(x, y, seed, split, where):
    tr, va, te = _split_indices(y, seed, split, where)
    return x[tr], y[tr], x[va], y[va], x[te], y[te]


def _split_note(split, seed) -> str:
    return f"split {':'.join(f'{p:g}' for p in split)} stratified, seed {seed}"


def _standardize(x: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with ``x * scale + offset`` of zero mean and unit std over ``axis``."""
    mean, std = x.mean(axis=axis, dtype=np.float64), x.std(axis=axis, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return 1.0 / std, -mean / std
