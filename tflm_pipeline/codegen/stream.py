"""Streaming and camera constants of a model, for its settings header and runner.

Sensor windows: ``window`` time steps (the input's first axis) every ``hop`` steps (the
run's ``--stride``), channels innermost, as :mod:`..data.sensor_csv` cuts them.  Audio: one
clip (``clip_samples``) every ``hop`` samples.  The result smoother's defaults follow TFLM
micro_speech's RecognizeCommands, scaled to the run's window.  Image models (uint8 samples
H x W x 1|3) get a camera path whose pixel -> int8 input table is the training
preprocessing followed by the input quantization, computed here with the very functions
the pipeline uses (:meth:`Preprocessing.apply`, :func:`..tflite.quant.quantize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..preprocessing import Preprocessing
from ..tflite.model_info import ModelInfo
from ..tflite.quant import quantize
from .c_literals import c_float

# micro_speech's RecognizeCommands defaults for its 1000 ms clip: average over 1000 ms,
# at least 3 results, threshold 200/255 (0.78), suppression 1500 ms.
SMOOTH_THRESHOLD = 0.8  # a class must average at least this probability (200/255 ~ 0.78)
SMOOTH_MIN_COUNT = 3  # results averaged before any detection (at most the window holds)
SUPPRESSION_WINDOWS = 1.5  # suppression = 1.5 window lengths (1500 ms for a 1 s clip)
AUDIO_HOP_FRACTION = 2  # audio: a new clip every half clip (whole feature frames)
CAMERA_MAX_FRAME = (480, 640)  # default largest camera frame (H, W): VGA; sizes the tables


def stream_context(info: ModelInfo, ident: str, pre: Preprocessing | None,
                   hop: int | None) -> dict:
    """The templates' ``stream`` and ``camera`` values (None when they do not apply): one
    computation for the settings header and the runner."""
    stream = stream_settings(pre, info, hop)
    camera = camera_settings(pre, info)
    return {"stream": None if stream is None else stream.to_context(ident.upper()),
            "camera": None if camera is None else camera.to_context()}


@dataclass(frozen=True)
class StreamSettings:
    """How samples arrive and how outputs are smoothed; times in stream samples."""

    kind: str  # "sensor" (float time steps of `channels` values) or "audio" (int16 PCM)
    window: int  # time steps (samples) in one model input
    hop: int  # time steps between two windows
    channels: int
    sample_rate_hz: float | None
    hop_reason: str
    average: int  # outputs of windows ending within this many samples are averaged
    max_results: int  # storage: outputs the average window can hold
    min_count: int
    threshold: float
    suppression: int  # samples after a detection in which the same class is not reported

    def to_context(self, macro: str) -> dict:
        ms = (lambda n: None) if not self.sample_rate_hz else (
            lambda n: f"{1000.0 * n / self.sample_rate_hz:.4g} ms")
        return {"kind": self.kind, "window": self.window, "hop": self.hop,
                "channels": self.channels, "hop_reason": self.hop_reason,
                "average": self.average, "max_results": self.max_results,
                "min_count": self.min_count, "threshold": c_float(self.threshold),
                "threshold_text": f"{self.threshold:g}", "suppression": self.suppression,
                "window_ms": ms(self.window), "hop_ms": ms(self.hop),
                "average_ms": ms(self.average), "suppression_ms": ms(self.suppression),
                "rate_macro": (f"{macro}_FEATURE_SAMPLE_RATE" if self.kind == "audio"
                               else f"{macro}_SAMPLE_RATE_HZ" if self.sample_rate_hz else None)}


def stream_settings(pre: Preprocessing | None, info: ModelInfo,
                    hop: int | None) -> StreamSettings | None:
    """The streaming settings of a sensor-window run (``hop`` = its stride) or an audio
    run (hop: half a clip in whole feature frames); None for other models."""
    if pre is None or len(info.inputs) != 1 or info.inputs[0].type != "INT8":
        return None
    features = pre.features or {}
    if "clip_samples" in features:
        window = int(features["clip_samples"])
        step = int(features.get("frame_step") or 1)
        hop = max(step, (window // AUDIO_HOP_FRACTION) // step * step)
        return _smoothed("audio", window, hop, 1, float(features["sample_rate"]),
                         f"half the clip in whole {step}-sample feature frames")
    if hop is None or len(pre.input_shape) != 2 or pre.raw_dtype != "float32":
        return None
    window, channels = (int(d) for d in pre.input_shape)
    return _smoothed("sensor", window, int(hop), channels, pre.sample_rate_hz,
                     "the run's --stride" if hop != window else
                     "the run's --stride (= --window: windows do not overlap)")


def _smoothed(kind, window, hop, channels, rate, reason) -> StreamSettings:
    """Smoother defaults scaled from micro_speech (1 s clip): average the outputs of the
    windows ending within one window length (the ones overlapping the newest), suppress
    repeats for 1.5 window lengths."""
    max_results = max(1, math.ceil(window / hop))
    return StreamSettings(kind, window, hop, channels, rate, reason, average=window,
                          max_results=max_results,
                          min_count=min(SMOOTH_MIN_COUNT, max_results),
                          threshold=SMOOTH_THRESHOLD,
                          suppression=int(round(SUPPRESSION_WINDOWS * window)))


@dataclass(frozen=True)
class CameraSettings:
    height: int
    width: int
    channels: int
    table: np.ndarray  # (channels, 256) int8: pixel value -> model input

    def to_context(self) -> dict:
        return {"height": self.height, "width": self.width, "channels": self.channels,
                "max_height": CAMERA_MAX_FRAME[0], "max_width": CAMERA_MAX_FRAME[1],
                "table": [[", ".join(f"{int(v):4d}" for v in row[i:i + 16])
                           for i in range(0, 256, 16)] for row in self.table]}


def camera_settings(pre: Preprocessing | None, info: ModelInfo) -> CameraSettings | None:
    """The camera path of an image model (uint8 samples H x W x 1|3, int8 input)."""
    if pre is None or pre.raw_dtype != "uint8" or len(pre.input_shape) != 3:
        return None
    height, width, channels = (int(d) for d in pre.input_shape)
    t = info.inputs[0]
    if channels not in (1, 3) or t.type != "INT8" or t.elements != height * width * channels:
        return None
    return CameraSettings(height, width, channels, pixel_table(pre, info))


def pixel_table(pre: Preprocessing, info: ModelInfo) -> np.ndarray:
    """(channels, 256) int8: every uint8 pixel value of every channel through the training
    preprocessing and the input quantization (the pipeline's own functions)."""
    height, width, channels = pre.input_shape
    per_image = height * width
    images = -(-256 // per_image)
    values = np.resize(np.arange(256, dtype=np.uint8), images * per_image)
    pixels = np.repeat(values[:, None], channels, axis=1).reshape(images, height, width,
                                                                   channels)
    q = quantize(pre.apply(pixels), info.inputs[0]).reshape(-1, channels)[:256]
    return np.ascontiguousarray(q.T)
