"""``<name>_model_settings.h``: shapes, types, quantization, labels, preprocessing constants
and the quantize/dequantize helpers firmware needs to feed the model correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__, arena
from ..artifacts import write_text
from ..data import Preprocessing
from ..model_info import ModelInfo, TensorInfo
from .c_array import c_identifier
from .templates import c_float, c_string, render

DEFAULT_ARENA_PROFILE = "tflm-2026"
_CTYPES = {"INT8": "int8_t", "UINT8": "uint8_t", "INT16": "int16_t", "INT32": "int32_t",
           "FLOAT32": "float"}


def write_settings_header(info: ModelInfo, name: str, out_dir: str | Path, *,
                          preprocessing: Preprocessing | None = None,
                          source: str = "model.tflite",
                          arena_profile: str | None = DEFAULT_ARENA_PROFILE) -> Path:
    ident = c_identifier(name)
    file_name = f"{ident}_model_settings.h"
    tensors = ([_tensor(t, ident, "input", i, len(info.inputs)) for i, t in enumerate(info.inputs)]
               + [_tensor(t, ident, "output", i, len(info.outputs))
                  for i, t in enumerate(info.outputs)])
    labels = preprocessing.labels if preprocessing is not None else []
    pre = None
    if preprocessing is not None:
        p = preprocessing
        channels = len(p.scale) if isinstance(p.scale, list) else (
            len(p.offset) if isinstance(p.offset, list) else 1)
        pre = {"dataset": p.dataset, "raw_dtype": p.raw_dtype, "per_channel": p.per_channel,
               "channels": channels,
               "scale": [c_float(v) for v in _per_channel(p.scale, channels)],
               "offset": [c_float(v) for v in _per_channel(p.offset, channels)],
               "features": [(_macro_key(k), _c_value(v)) for k, v in (p.features or {}).items()]}
    estimate = None
    if arena_profile is not None and info.subgraphs == 1:
        e = arena.estimate(info, arena_profile)
        estimate = {**e.to_dict(), "bytes": e.bytes, "used": e.used, "planned": e.planned,
                    "bookkeeping": e.bookkeeping, "binding": e.binding,
                    "title": arena.profile_title(arena_profile)}
    text = render("model/model_settings.h.j2", arena=estimate, file_name=file_name, name=ident,
                  macro=ident.upper(), guard=f"{ident.upper()}_MODEL_SETTINGS_H_",
                  tool_version=__version__, source=Path(source).name, sha256=info.sha256,
                  tensors=tensors, labels=[c_string(label) for label in labels],
                  preprocessing=pre)
    return write_text(Path(out_dir) / file_name, text)


def _per_channel(value, channels: int) -> list[float]:
    return list(value) if isinstance(value, list) else [value] * channels


def _macro_key(key: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper()


def _c_value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return c_float(value)
    return c_string(str(value))


def _tensor(t: TensorInfo, ident: str, role: str, index: int, count: int) -> dict:
    suffix = str(index) if count > 1 else ""
    ctype = _CTYPES.get(t.type)
    quantized = t.is_quantized and ctype is not None and ctype != "float"
    if t.is_quantized and len(t.scales) > 1:
        quantized = False  # per-channel I/O tensors do not occur in TFLite models
    entry = {
        "role": role, "name": t.name, "type": t.type, "shape": list(t.shape),
        "dims": list(t.shape), "elements": int(np.prod(t.shape)), "bytes": t.nbytes,
        "macro": f"{ident.upper()}_{role.upper()}{suffix}",
        "prefix": f"{ident}_{role}{suffix}", "ctype": ctype or "uint8_t",
        "quantized": quantized,
    }
    if quantized:
        limits = np.iinfo(t.dtype)
        entry.update(scale=c_float(t.scales[0]), zero_point=int(t.zero_points[0]),
                     qmin=int(limits.min), qmax=int(limits.max))
    return entry
