"""WAV folders: class folders of 16 kHz mono clips, as log-mel or MFCC features.

The features are computed by the C front end the firmware runs (:mod:`.audio_frontend`),
so the device computes the same bits the model was trained on."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .audio_features import FEATURE_TYPES, FeatureParams
from .audio_frontend import compute, frontend
from .augment import audio_options, augment_clips
from .class_folders import (PathLike, class_files, file_groups, flatten, open_folder,
                            sample_groups, split_groups)
from .dataset import SPLITS, Dataset
from .spec import DEFAULT_SPLIT, DataSpec
from .splits import ids_of, split_indices, split_note, standardize

PCM_SCALE = 1.0 / 32768.0  # 16-bit PCM sample -> float in [-1, 1)
_FEATURE_CHUNK = 256  # clips per feature computation: bounds memory on large folders


def load_wav_spec(spec: DataSpec) -> Dataset:
    """The WAV folder named by ``spec`` (``--audio-features``, ``--clip-seconds``)."""
    return load_wav_folder(spec.path, features=spec.audio_features,
                           clip_seconds=spec.clip_seconds, seed=spec.seed, split=spec.split,
                           augment=spec.audio_augment, group_column=spec.group_column)


def load_wav_folder(path: PathLike, *, features: str = "mfcc", clip_seconds: float = 1.0,
                    seed: int = 0, split: tuple[float, float, float] = DEFAULT_SPLIT,
                    augment: dict | None = None, params: FeatureParams | None = None,
                    group_column: str | None = None) -> Dataset:
    """Clips in class folders (``class/*.wav``, 16-bit mono PCM) as log-mel or MFCC features.

    Clips are zero-padded or trimmed to ``clip_seconds``; samples are float32
    (frames, coefficients, 1), standardized by the train split's mean and std.
    ``augment`` (see :func:`tflm_pipeline.data.augment.parse_augment`) adds shifted / noisy
    copies of every training clip, seeded; validation and test are never augmented.
    """
    root = open_folder(path, "audio")
    params = params or FeatureParams()
    if features not in FEATURE_TYPES:
        raise TflmpError(f"unknown audio features '{features}': use mfcc or log-mel")
    clip = int(round(clip_seconds * params.sample_rate))
    if params.num_frames(clip) == 0:
        raise TflmpError(f"--clip-seconds {clip_seconds} is shorter than one "
                         f"{params.frame_length_ms:g} ms frame; use a longer clip")
    options = audio_options(augment) if augment is not None else None
    split_notes: list[str] = []
    labels, all_files, all_y, index_parts = _split(root, seed, split, group_column, split_notes)
    parts = _by_split(all_files, all_y, index_parts)
    noise = _noise_clips(options["noise_dir"], params) if options else []
    rng = np.random.default_rng(seed)
    arrays, fitted = [], np.zeros(2, np.int64)  # clips padded, clips trimmed
    for name, (files, y) in parts.items():
        train_options = options if name == "train" else None
        x, copies, counts = _clip_features(files, clip, features, params,
                                           train_options, rng, noise)
        fitted = fitted + counts
        if train_options:
            x = np.concatenate([x, copies])
            y = np.concatenate([y, np.repeat(y, train_options["copies"])])
        arrays += [x, y]
    over = None  # one mean and std over all features (axis None)
    scale, offset = standardize(arrays[0], axis=over)
    feature_dict = {**params.to_dict(features), "clip_seconds": clip_seconds,
                    "clip_samples": clip, "pcm_scale": PCM_SCALE,
                    **frontend(features, params).to_dict()}
    pre = Preprocessing(root.name, arrays[0].shape[1:], "float32", float(scale), float(offset),
                        labels, features=feature_dict)
    clips = sum(len(y) for _, y in parts.values())
    notes = [f"WAV clips from {root}: {clips} in {len(labels)} class folders, "
             f"{clip_seconds:g} s at {params.sample_rate} Hz ({fitted[0]} shorter padded, "
             f"{fitted[1]} longer trimmed); {features} {arrays[0].shape[1]}x"
             f"{arrays[0].shape[2]}; {split_note(split, seed)}; standardized on train"]
    if options:
        noise_text = (f", noise from {options['noise_dir']} at {options['noise_snr_db'][0]:g}-"
                      f"{options['noise_snr_db'][1]:g} dB SNR" if noise else "")
        notes.append(f"train augmented offline: {options['copies']} copies per clip (time "
                     f"shift up to +-{options['time_shift_ms']:g} ms{noise_text}), seed {seed}")
    names = [f.relative_to(root).as_posix() for f in all_files]
    sample_ids = ids_of(index_parts, f"file path under {root}", names)
    groups = split_groups({s: [all_files[i] for i in idx] for s, idx in zip(SPLITS, index_parts)},
                          group_column, root)
    if groups is not None:
        sample_ids["groups"] = groups
    by_split = {s: [all_files[i] for i in idx] for s, idx in zip(SPLITS, index_parts)}
    per_sample = sample_groups(by_split, group_column, root)
    if options:  # an augmented copy keeps its clip's group (each clip one, without groups)
        per_sample = per_sample or {s: np.asarray([f.relative_to(root).as_posix() for f in fs])
                                    for s, fs in by_split.items()}
        per_sample["train"] = np.concatenate([per_sample["train"], np.repeat(
            per_sample["train"], options["copies"])])
    return Dataset(root.name, *arrays, preprocessing=pre, notes=notes + split_notes,
                   sample_ids=sample_ids, groups=per_sample,
                   standardized={"axis": over})


def split_files(path: PathLike, *, seed: int = 0, split: tuple[float, float, float] = DEFAULT_SPLIT,
                group_column: str | None = None
                ) -> tuple[list[str], dict[str, tuple[list[Path], np.ndarray]]]:
    """The class names and, per split (train, val, test), the clip files and their labels
    in the order :func:`load_wav_folder` stores their features."""
    root = open_folder(path, "audio")
    labels, all_files, all_y, index_parts = _split(root, seed, split, group_column, None)
    return labels, _by_split(all_files, all_y, index_parts)


def _split(root: Path, seed: int, split, group_column: str | None, notes: list[str] | None):
    """The class names, every clip file and label, and each split's indices into them
    (group-aware: :func:`tflm_pipeline.data.splits.split_indices`)."""
    folders = class_files(root, (".wav",), "WAV clip")
    labels = sorted(folders)
    all_files, all_y = flatten(folders, labels)
    parts = split_indices(all_y, seed, split, root, notes=notes,
                          groups=file_groups(all_files, group_column, root))
    return labels, all_files, all_y, parts


def _by_split(all_files: list[Path], all_y: np.ndarray, parts
              ) -> dict[str, tuple[list[Path], np.ndarray]]:
    return {name: ([all_files[i] for i in idx], all_y[idx]) for name, idx in zip(SPLITS, parts)}


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
