"""How a raw sample becomes a model input: ``preprocessing.json`` of a run.

:class:`Preprocessing` is the single description used for training, int8 calibration,
the TFLM harness and the constants emitted to C, so training and device can never
disagree.  It is a plain value: the data wing makes it, the run folder stores it, the
harness applies it and codegen writes it out.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .artifacts import write_json
from .errors import TflmpError


@dataclass(frozen=True)
class Preprocessing:
    """How a raw sample becomes a model input: ``x = raw * scale + offset``, reshaped.

    ``scale`` and ``offset`` are one number, or one per channel (the last axis, e.g.
    per-sensor-axis standardization).  ``raw_dtype`` is the dtype samples arrive in (on
    the device too); ``labels`` names the classes in output order.  ``features``
    records how raw signals became the stored samples (audio: the log-mel or MFCC
    parameters), so firmware can compute the same.  ``sample_rate_hz`` is the rate of
    the time steps when the data's timestamps gave it (sensor CSVs), else None.
    """

    dataset: str
    input_shape: tuple[int, ...]
    raw_dtype: str
    scale: float | list[float]
    offset: float | list[float]
    labels: list[str]
    features: dict | None = None
    sample_rate_hz: float | None = None

    @property
    def per_channel(self) -> bool:
        return isinstance(self.scale, list) or isinstance(self.offset, list)

    @property
    def channels(self) -> int:
        """How many values ``scale`` and ``offset`` hold (1 unless per channel)."""
        for v in (self.scale, self.offset):
            if isinstance(v, list):
                return len(v)
        return 1

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Raw samples (N, ...) -> float32 model inputs (N, *input_shape)."""
        raw = np.asarray(raw)
        size = int(np.prod(self.input_shape))
        if raw.ndim == 0 or int(np.prod(raw.shape[1:])) != size:
            raise TflmpError(f"samples of shape {list(raw.shape[1:])} do not fit the input "
                             f"shape {list(self.input_shape)} of this preprocessing "
                             f"({self.dataset}); use the data the model was trained on")
        x = raw.reshape((-1, *self.input_shape)).astype(np.float32)  # a copy, changed in place
        x *= np.asarray(self.scale, np.float32)
        x += np.asarray(self.offset, np.float32)
        return x

    def then(self, scale, offset) -> "Preprocessing":
        """This preprocessing followed by ``x * scale + offset`` (numbers or per-channel)."""
        def plain(v):
            v = np.asarray(v, np.float32)
            return float(v) if v.ndim == 0 else [float(a) for a in v]

        new_scale = np.asarray(self.scale, np.float32) * np.asarray(scale, np.float32)
        new_offset = (np.asarray(self.offset, np.float32) * np.asarray(scale, np.float32)
                      + np.asarray(offset, np.float32))
        return Preprocessing(self.dataset, self.input_shape, self.raw_dtype, plain(new_scale),
                             plain(new_offset), self.labels, self.features, self.sample_rate_hz)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        if d["sample_rate_hz"] is None:
            del d["sample_rate_hz"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        def number_or_list(v):
            return [float(x) for x in v] if isinstance(v, list) else float(v)

        return cls(dataset=d["dataset"], input_shape=tuple(d["input_shape"]),
                   raw_dtype=d["raw_dtype"], scale=number_or_list(d["scale"]),
                   offset=number_or_list(d["offset"]), labels=list(d["labels"]),
                   features=d.get("features"), sample_rate_hz=d.get("sample_rate_hz"))

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Preprocessing":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TflmpError(f"cannot read preprocessing file {path}: {e}; "
                             "use the preprocessing.json written by 'tflmp train'") from None
