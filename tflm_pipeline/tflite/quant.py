"""Tensor quantization maths exactly as TFLite and TFLM do it (and as the generated C
helpers do): float values to a tensor's storage type and back."""

from __future__ import annotations

import numpy as np

from .model_info import TensorInfo


def quantize(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    """Float values -> the tensor's storage type, as TFLite does: float32 division by the
    scale, rounding half away from zero (``std::round``), zero point, saturation.  The
    generated C helper computes the same."""
    if not t.is_quantized:
        return np.asarray(x, dtype=t.dtype)
    info = np.iinfo(t.dtype)
    v = np.asarray(x, np.float32) / np.float32(t.scales[0])
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + t.zero_points[0]
    return np.clip(q, info.min, info.max).astype(t.dtype)


def dequantize(q: np.ndarray, t: TensorInfo) -> np.ndarray:
    """A tensor's stored values -> float32 (``(q - zero_point) * scale``)."""
    if not t.is_quantized:
        return np.asarray(q, np.float32)
    return (np.asarray(q, np.int32) - t.zero_points[0]).astype(np.float32) * np.float32(t.scales[0])
