"""Tensor quantization maths exactly as TFLite and TFLM do it (and as the generated C
helpers do): float values to a tensor's storage type and back."""

from __future__ import annotations

import numpy as np

from .model_info import TensorInfo

_BLOCK = 1 << 16  # values quantized at a time


def quantize(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    """Float values -> the tensor's storage type, as TFLite does: float32 division by the
    scale, rounding half away from zero (``std::round``), zero point (added in float32,
    exact for any value that is not saturated), saturation.  The generated C helper
    (``<name>_input_quantize``) computes the same bytes."""
    if not t.is_quantized:
        return np.asarray(x, dtype=t.dtype)
    info = np.iinfo(t.dtype)
    x = np.asarray(x)
    out = np.empty(x.shape, t.dtype)
    values, stored = x.reshape(-1), out.reshape(-1)
    # a cache-sized block at a time: the temporaries of a whole test set (16,000 MNIST
    # images) cost 1 s of page faults, blocks 0.07 s
    for start in range(0, values.size, _BLOCK):
        v = np.asarray(values[start:start + _BLOCK], np.float32) / np.float32(t.scales[0])
        q = round_half_away(v) + np.float32(t.zero_points[0])
        stored[start:start + _BLOCK] = np.clip(q, info.min, info.max)
    return out


def round_half_away(v: np.ndarray) -> np.ndarray:
    """float32 values rounded half away from zero, exactly as C's ``roundf``: the
    fraction ``v - trunc(v)`` is exact in float32, so only a true tie rounds up (the
    usual ``floor(|v| + 0.5)`` turns 0.49999997 into 1: the sum rounds)."""
    v = np.asarray(v, np.float32)
    whole = np.trunc(v)
    up = np.abs(v - whole) >= np.float32(0.5)
    return (whole + np.where(up, np.sign(v), np.float32(0))).astype(np.float32)


def dequantize(q: np.ndarray, t: TensorInfo) -> np.ndarray:
    """A tensor's stored values -> float32 (``(q - zero_point) * scale``)."""
    if not t.is_quantized:
        return np.asarray(q, np.float32)
    return (np.asarray(q, np.int32) - t.zero_points[0]).astype(np.float32) * np.float32(t.scales[0])


def rounding_margin(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    """How far each float value lies from a rounding boundary of :func:`quantize`, in
    quantization steps (0: an exact tie; 0.5: on a level); inf where it saturates."""
    v = np.asarray(x, np.float32) / np.float32(t.scales[0])
    info = np.iinfo(t.dtype)
    q = round_half_away(v) + np.float32(t.zero_points[0])
    margin = np.abs(np.abs(v - np.trunc(v)) - np.float32(0.5)).astype(np.float64)
    return np.where((q < info.min) | (q > info.max), np.inf, margin)
