"""Log-mel and MFCC features of audio clips, in NumPy, matching ``tf.signal``: the
definition.  Training computes them with the integer C the firmware runs
(:mod:`.audio_frontend`), tested against this reference within stated rounding.

The steps and conventions are those of ``tf.signal`` so a model trained on these
features sees the same numbers as one fed by TensorFlow's audio ops:

1. frames of ``frame_length_ms`` every ``frame_step_ms``, no end padding
   (``tf.signal.stft(pad_end=False)``: ``1 + (samples - frame) // step`` frames);
2. a periodic Hann window (``tf.signal.hann_window(periodic=True)``);
3. the magnitude ``|rfft|`` with ``fft_length`` points (frames zero-padded at the end);
4. triangular filters on the HTK mel scale, ``mel = 1127 ln(1 + f / 700)``, as
   ``tf.signal.linear_to_mel_weight_matrix`` builds them (the DC bin gets no weight);
5. ``log(mel + log_offset)``;
6. MFCC: the DCT-II of the log-mel bands scaled by ``sqrt(2 / num_mel_bins)``, the
   first ``num_mfcc`` kept, as ``tf.signal.mfccs_from_log_mel_spectrograms`` (its
   coefficient 0 is ``sqrt(2)`` times the orthonormal DCT-II's; the others agree).

Signals are float samples in [-1, 1) (16-bit PCM divided by 32768).  The defaults
give the DS-CNN keyword-spotting input: 1 s at 16 kHz -> 49 frames x 10 MFCC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..errors import TflmpError

FEATURE_TYPES = ("mfcc", "log-mel")


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of the log-mel / MFCC front end (defaults: DS-CNN keyword spotting)."""

    sample_rate: int = 16000
    frame_length_ms: float = 30.0
    frame_step_ms: float = 20.0
    fft_length: int = 512
    num_mel_bins: int = 40
    lower_edge_hz: float = 20.0
    upper_edge_hz: float = 4000.0
    num_mfcc: int = 10
    log_offset: float = 1e-6
    window: str = "hann"

    def __post_init__(self):
        if self.window != "hann":
            raise TflmpError(f"audio window '{self.window}' is not supported; use 'hann'")
        if self.frame_length < 1 or self.frame_step < 1:
            raise TflmpError(f"audio frames of {self.frame_length_ms} ms every "
                             f"{self.frame_step_ms} ms are empty at {self.sample_rate} Hz; "
                             "use longer frames")
        if self.fft_length < self.frame_length:
            raise TflmpError(f"fft_length {self.fft_length} is shorter than a frame of "
                             f"{self.frame_length} samples; use {_next_pow2(self.frame_length)}")
        if not 0 <= self.lower_edge_hz < self.upper_edge_hz <= self.sample_rate / 2:
            raise TflmpError(f"mel range {self.lower_edge_hz}-{self.upper_edge_hz} Hz must "
                             f"rise within 0-{self.sample_rate / 2:g} Hz (half the sample rate)")
        if not 1 <= self.num_mfcc <= self.num_mel_bins:
            raise TflmpError(f"num_mfcc {self.num_mfcc} must lie in 1..num_mel_bins "
                             f"({self.num_mel_bins})")

    @property
    def frame_length(self) -> int:
        """Samples per frame."""
        return int(round(self.sample_rate * self.frame_length_ms / 1000.0))

    @property
    def frame_step(self) -> int:
        """Samples between frame starts."""
        return int(round(self.sample_rate * self.frame_step_ms / 1000.0))

    def num_frames(self, num_samples: int) -> int:
        """Frames in a signal of ``num_samples`` (0 when shorter than one frame)."""
        return max(0, 1 + (num_samples - self.frame_length) // self.frame_step)

    def to_dict(self, kind: str = "mfcc") -> dict:
        """The parameters plus ``type`` and the frame sizes in samples, for JSON and C."""
        if kind not in FEATURE_TYPES:
            raise TflmpError(f"unknown audio features '{kind}': use mfcc or log-mel")
        return {"type": kind, **asdict(self), "frame_length": self.frame_length,
                "frame_step": self.frame_step}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureParams":
        """Inverse of :meth:`to_dict` (extra keys such as ``type`` are ignored)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def log_mel(signal: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Log-mel spectrogram: (..., samples) -> (..., frames, num_mel_bins) float32."""
    frames = _frames(np.asarray(signal, np.float64), params)
    spectrum = np.abs(np.fft.rfft(frames * _hann(params.frame_length), n=params.fft_length))
    mel = spectrum @ mel_weight_matrix(params)
    return np.log(mel + params.log_offset).astype(np.float32)


def mfcc(signal: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """MFCCs: (..., samples) -> (..., frames, num_mfcc) float32."""
    return (log_mel(signal, params).astype(np.float64)
            @ _dct_matrix(params.num_mel_bins, params.num_mfcc)).astype(np.float32)


def compute(signal: np.ndarray, kind: str, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """``mfcc`` or ``log-mel`` features of ``signal`` by name."""
    if kind == "mfcc":
        return mfcc(signal, params)
    if kind == "log-mel":
        return log_mel(signal, params)
    raise TflmpError(f"unknown audio features '{kind}': use mfcc or log-mel")


def mel_weight_matrix(params: FeatureParams) -> np.ndarray:
    """(fft_length // 2 + 1, num_mel_bins) triangular filters, as tf.signal builds them."""
    bins = params.fft_length // 2 + 1
    bin_mel = _hz_to_mel(np.linspace(0.0, params.sample_rate / 2.0, bins)[1:])[:, None]
    edges = np.linspace(_hz_to_mel(params.lower_edge_hz), _hz_to_mel(params.upper_edge_hz),
                        params.num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, params.num_mel_bins)), weights])


def _frames(signal: np.ndarray, params: FeatureParams) -> np.ndarray:
    count = params.num_frames(signal.shape[-1])
    if count == 0:
        raise TflmpError(f"a signal of {signal.shape[-1]} samples is shorter than one "
                         f"{params.frame_length_ms:g} ms frame ({params.frame_length} samples); "
                         "pad it or use shorter frames")
    starts = np.arange(count) * params.frame_step
    return signal[..., starts[:, None] + np.arange(params.frame_length)]


def _hann(length: int) -> np.ndarray:
    """Periodic Hann window (tf.signal.hann_window's default)."""
    if length == 1:
        return np.ones(1)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def _dct_matrix(num_bins: int, num_out: int) -> np.ndarray:
    """(num_bins, num_out): DCT-II scaled by sqrt(2 / num_bins), tf.signal's MFCC basis."""
    n = np.arange(num_bins)[:, None]
    k = np.arange(num_out)[None, :]
    return np.sqrt(2.0 / num_bins) * np.cos(np.pi * k * (2 * n + 1) / (2 * num_bins))


def _next_pow2(value: int) -> int:
    return 1 << (int(value) - 1).bit_length()
