"""Training-data augmentation: random image transforms and offline audio copies.

Augmentation only ever changes the training data.  Image transforms run in the
tf.data input pipeline (:func:`image_augmenter` in a ``.map``), never as layers of the
model, so the exported int8 model and the firmware contain none of them.  Audio clips
are augmented once, before features are computed, by adding shifted and noisy copies
of every training clip (:func:`augment_clips`).  ``--augment`` strings are parsed by
:func:`parse_augment`.  TensorFlow is imported only when an image augmenter is built.
"""

from __future__ import annotations

import numpy as np

from ..errors import TflmpError

IMAGE_DEFAULTS = {"flip": False, "shift": 0.0, "rotate_degrees": 0.0}
AUDIO_DEFAULTS = {"time_shift_ms": 0.0, "noise_dir": None, "noise_snr_db": (5.0, 20.0),
                  "copies": 1}
# --augment key -> option name
_IMAGE_KEYS = {"flip": "flip", "shift": "shift", "rotate": "rotate_degrees"}
_AUDIO_KEYS = {"time-shift": "time_shift_ms", "noise": "noise_dir", "snr": "noise_snr_db",
               "copies": "copies"}
_USAGE = ("use flip, shift=FRACTION, rotate=DEGREES for images or time-shift=MS, noise=DIR, "
          "snr=LO:HI, copies=N for audio, e.g. --augment flip,shift=0.1,rotate=10")


def parse_augment(text: str) -> dict:
    """Parse ``"flip,shift=0.1,rotate=10"`` or ``"time-shift=100,noise=DIR,snr=5:20,copies=2"``.

    Returns the full option dict of one kind with defaults filled in: image options
    (``flip``, ``shift``, ``rotate_degrees``: the arguments of :func:`image_augmenter`)
    or audio options (``time_shift_ms``, ``noise_dir``, ``noise_snr_db``, ``copies``:
    the ``augment`` argument of ``data.wav_folder.load_wav_folder``).
    """
    return parse_augment_kind(text)[1]


def parse_augment_kind(text: str) -> tuple[str, dict]:
    """:func:`parse_augment` with the kind of augmentation: ``("image" | "audio", options)``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise TflmpError(f"--augment is empty; {_USAGE}")
    raw = {}
    for item in items:
        key, has_value, value = (part.strip() for part in item.partition("="))
        key = key.lower().replace("_", "-")
        if key not in _IMAGE_KEYS and key not in _AUDIO_KEYS:
            raise TflmpError(f"--augment: unknown key '{key}'; {_USAGE}")
        if (key == "flip") == bool(has_value):
            need = "takes no value" if key == "flip" else "needs a value (KEY=VALUE)"
            raise TflmpError(f"--augment: '{key}' {need}; {_USAGE}")
        raw[key] = value
    kinds = {"image" if key in _IMAGE_KEYS else "audio" for key in raw}
    if len(kinds) > 1:
        raise TflmpError(f"--augment mixes image and audio keys ({', '.join(raw)}); {_USAGE}")
    if "image" in kinds:
        return "image", image_options({_IMAGE_KEYS[k]: True if k == "flip" else _number(k, v)
                                       for k, v in raw.items()})
    options = {}
    for key, value in raw.items():
        if key == "noise":
            options["noise_dir"] = value
        elif key == "snr":
            low, _, high = value.partition(":")
            options["noise_snr_db"] = (_number(key, low), _number(key, high or low))
        else:
            options[_AUDIO_KEYS[key]] = _number(key, value)
    return "audio", audio_options(options)


def image_options(options: dict) -> dict:
    """Image options with defaults filled in; unknown keys or bad ranges raise."""
    out = _with_defaults(options, IMAGE_DEFAULTS, "image")
    out["flip"] = bool(out["flip"])
    _check_range("shift", out["shift"], 0.0, 1.0, upper_open=True)
    _check_range("rotate", out["rotate_degrees"], 0.0, 180.0)
    return out


def audio_options(options: dict) -> dict:
    """Audio options with defaults filled in; unknown keys or bad ranges raise."""
    out = _with_defaults(options, AUDIO_DEFAULTS, "audio")
    _check_range("time-shift", out["time_shift_ms"], 0.0, 10_000.0)
    low, high = (float(v) for v in out["noise_snr_db"])
    if low > high:
        raise TflmpError(f"--augment snr={low:g}:{high:g} must be LOW:HIGH in dB, e.g. snr=5:20")
    out["noise_snr_db"] = (low, high)
    copies = out["copies"]
    if copies != int(copies) or copies < 1:
        raise TflmpError(f"--augment copies={copies:g} must be a whole number of at least 1")
    out["copies"] = int(copies)
    if not out["time_shift_ms"] and out["noise_dir"] is None:
        raise TflmpError(f"--augment sets no audio augmentation (time-shift=0 and no noise); "
                         f"{_USAGE}")
    return out


def image_augmenter(flip: bool, shift: float, rotate_degrees: float, seed: int):
    """A ``(x, y) -> (x', y)`` function for ``tf.data.Dataset.map`` that randomly transforms x.

    ``x`` is one preprocessed float image (H, W, C) or a batch (N, H, W, C).  Random
    horizontal flips, translations of up to ``shift`` of the height/width and rotations
    of up to ``rotate_degrees`` either way, by tf_keras preprocessing layers called in
    training mode; uncovered pixels become 0.  The draws are seeded: the same seed gives
    the same sequence of transforms, and every epoch draws new ones.  It belongs in the
    input pipeline only: the exported model never contains augmentation.
    """
    options = image_options({"flip": flip, "shift": shift, "rotate_degrees": rotate_degrees})
    from ..tf_env import load

    _, keras, _ = load()
    layers = []
    if options["flip"]:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if options["shift"]:
        layers.append(keras.layers.RandomTranslation(options["shift"], options["shift"],
                                                     fill_mode="constant", seed=seed + 1))
    if options["rotate_degrees"]:
        layers.append(keras.layers.RandomRotation(options["rotate_degrees"] / 360.0,
                                                  fill_mode="constant", seed=seed + 2))
    if not layers:
        raise TflmpError(f"--augment sets no image augmentation (no flip, shift=0, rotate=0); "
                         f"{_USAGE}")
    transform = keras.Sequential(layers)

    def augment(x, y):
        return transform(x, training=True), y

    return augment


def augment_clips(clips: np.ndarray, options: dict, sample_rate: int, rng: np.random.Generator,
                  noise: list[np.ndarray] = ()) -> np.ndarray:
    """``copies`` augmented versions of every clip: (N, samples) -> (N * copies, samples).

    Copy ``c`` of clip ``i`` is row ``i * copies + c``.  Each copy is the clip shifted by
    a random whole number of samples within +-``time_shift_ms`` (zero fill), plus, when
    ``noise`` clips are given, a random segment of a random one scaled to a random SNR
    in ``noise_snr_db``; the result is clipped to [-1, 1].  All draws come from ``rng``.
    """
    options = audio_options(options)
    max_shift = int(round(options["time_shift_ms"] * sample_rate / 1000.0))
    low_db, high_db = options["noise_snr_db"]
    clips = np.asarray(clips, np.float32)
    length = clips.shape[1]
    out = np.empty((len(clips) * options["copies"], length), np.float32)
    for row, clip in enumerate(np.repeat(clips, options["copies"], axis=0)):
        shifted = _shift(clip, int(rng.integers(-max_shift, max_shift + 1)))
        if len(noise):
            source = noise[int(rng.integers(len(noise)))]
            start = int(rng.integers(max(1, len(source) - length + 1)))
            segment = np.zeros(length, np.float32)
            piece = source[start:start + length]
            segment[:len(piece)] = piece
            shifted = _mix(shifted, segment, rng.uniform(low_db, high_db))
        out[row] = np.clip(shifted, -1.0, 1.0)
    return out


def _shift(clip: np.ndarray, by: int) -> np.ndarray:
    out = np.zeros_like(clip)
    if by >= 0:
        out[by:] = clip[:len(clip) - by]
    else:
        out[:by] = clip[-by:]
    return out


def _mix(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise scaled so that signal power / noise power = snr_db."""
    p_signal, p_noise = float(np.mean(signal ** 2)), float(np.mean(noise ** 2))
    if p_signal == 0.0 or p_noise == 0.0:
        return signal
    return signal + noise * np.float32(np.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0))))


def _with_defaults(options: dict, defaults: dict, kind: str) -> dict:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TflmpError(f"unknown {kind} augmentation option(s) {', '.join(unknown)}; "
                         f"use {', '.join(defaults)}")
    return {**defaults, **options}


def _number(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise TflmpError(f"--augment {key}={value}: '{value}' is not a number") from None


def _check_range(key: str, value, low: float, high: float, upper_open: bool = False) -> None:
    ok = low <= value < high if upper_open else low <= value <= high
    if not ok:
        bound = f"below {high:g}" if upper_open else f"at most {high:g}"
        raise TflmpError(f"--augment {key}={value:g} is out of range: use {low:g} or more, {bound}")
