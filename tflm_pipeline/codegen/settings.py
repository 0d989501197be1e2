"""``<name>_model_settings.h``: shapes, types, quantization, labels, preprocessing constants,
the tensor arena and the quantize/dequantize helpers firmware needs to feed the model
correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..artifacts import write_text
from ..firmware_files import render
from ..mcu.arena import ArenaEstimate
from ..preprocessing import Preprocessing
from ..tasks import Threshold
from ..tflite.model_info import ModelInfo, TensorInfo
from .c_literals import c_double, c_float, c_string, c_value, macro_name
from .stream import stream_context

_CTYPES = {"INT8": "int8_t", "UINT8": "uint8_t", "INT16": "int16_t", "INT32": "int32_t",
           "FLOAT32": "float"}


def write_settings_header(info: ModelInfo, ident: str, out_dir: str | Path, *,
                          preprocessing: Preprocessing | None, arena: ArenaEstimate | None,
                          labels: list[str] | None = None,
                          threshold: Threshold | None = None,
                          source: str = "model.tflite",
                          positive_threshold: Threshold | None = None,
                          stream_hop: int | None = None) -> Path:
    """Write ``<ident>_model_settings.h``; ``arena`` is stated as ``<IDENT>_ARENA_BYTES``
    (the one figure a project's runner uses too); ``labels`` default to the
    preprocessing's; ``threshold`` (an anomaly detector's) as ``<ident>_anomaly_threshold``;
    ``positive_threshold`` (a binary classifier's class-1 score) as
    ``<ident>_positive_threshold``; ``stream_hop`` (a sensor run's stride) enables the
    streaming constants (:mod:`.stream`)."""
    file_name = f"{ident}_model_settings.h"
    tensors = ([_tensor(t, ident, "input", i, len(info.inputs)) for i, t in enumerate(info.inputs)]
               + [_tensor(t, ident, "output", i, len(info.outputs))
                  for i, t in enumerate(info.outputs)])
    if labels is None:
        labels = preprocessing.labels if preprocessing is not None else []
    pre = None
    if preprocessing is not None:
        p = preprocessing
        pre = {"dataset": p.dataset, "raw_dtype": p.raw_dtype, "per_channel": p.per_channel,
               "channels": p.channels,
               "scale": [c_float(v) for v in _per_channel(p.scale, p.channels)],
               "offset": [c_float(v) for v in _per_channel(p.offset, p.channels)],
               "features": [(macro_name(k), c_value(v)) for k, v in (p.features or {}).items()],
               "sample_rate_hz": None if p.sample_rate_hz is None else c_float(p.sample_rate_hz)}
    estimate = None
    if arena is not None:
        estimate = {"bytes": arena.bytes, "used": arena.used, "planned": arena.planned,
                    "bookkeeping": arena.bookkeeping, "binding": arena.binding,
                    "title": arena.release_title}
    text = render("model/model_settings.h.j2", arena=estimate, file_name=file_name, name=ident,
                  macro=ident.upper(), guard=f"{ident.upper()}_MODEL_SETTINGS_H_",
                  tool_version=__version__, source=Path(source).name, sha256=info.sha256,
                  tensors=tensors, labels=[c_string(label) for label in labels],
                  preprocessing=pre,
                  anomaly=None if threshold is None else {
                      "value": c_double(threshold.value), "method": threshold.method},
                  positive=None if positive_threshold is None else {
                      "value": c_double(positive_threshold.value),
                      "method": positive_threshold.method},
                  **stream_context(info, ident, preprocessing, stream_hop))
    return write_text(Path(out_dir) / file_name, text)


def _per_channel(value, channels: int) -> list[float]:
    return list(value) if isinstance(value, list) else [value] * channels


def _tensor(t: TensorInfo, ident: str, role: str, index: int, count: int) -> dict:
    suffix = str(index) if count > 1 else ""
    ctype = _CTYPES.get(t.type)
    quantized = t.is_quantized and ctype is not None and ctype != "float"
    if t.is_quantized and len(t.scales) > 1:
        quantized = False  # per-channel I/O tensors do not occur in TFLite models
    entry = {
        "role": role, "name": t.name, "type": t.type, "shape": list(t.shape),
        "dims": list(t.shape), "elements": t.elements, "bytes": t.nbytes,
        "macro": f"{ident.upper()}_{role.upper()}{suffix}",
        "prefix": f"{ident}_{role}{suffix}", "ctype": ctype or "uint8_t",
        "quantized": quantized,
    }
    if quantized:
        limits = np.iinfo(t.dtype)
        entry.update(scale=c_float(t.scales[0]), zero_point=int(t.zero_points[0]),
                     qmin=int(limits.min), qmax=int(limits.max))
    return entry
