"""A trial's device cost before it trains: build the model untrained, convert it to int8
with the real converter (calibrated on the dataset), and figure flash, arena and latency
with the code ``tflmp profile`` uses.  Untrained weights quantize to the same bytes as
trained ones, so an architecture that breaks a limit is dropped before any training."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ..config import RunConfig
from ..data import DataSpec, load_dataset
from ..mcu.device_profile import device_profile
from ..quantize import rewrite
from ..quantize.int8 import (ConversionJob, check_convertible, convert_contained,
                             representative_samples, to_int8_tflite)
from ..tf_env import load
from ..tflite.model_info import ModelInfo, read_model
from ..training.keras_io import save_keras_model
from ..training.model_source import build, parse_model
from .space import Footprint

log = logging.getLogger(__name__)
CALIBRATION_SAMPLES = 64  # sizes do not depend on calibration quality


def footprint(info: ModelInfo, board: str | None = None, boards_file=None) -> Footprint:
    """Flash (the flatbuffer), 32-bit arena, and with a board its fit, kernel code and
    the upper end of its latency band: :func:`mcu.device_profile.device_profile`'s figures."""
    profile = device_profile(info, 0, board=board, boards_file=boards_file)
    arena = profile.memory.arena_32bit.bytes
    if profile.board is None:
        return Footprint(info.size, arena)
    row = profile.board
    return Footprint(info.size, row.arena_bytes, row.latency.high_ms,
                     row.fit.flash["TFLM code"], row.fit.fits, tuple(row.fit.reasons))


class DataCache:
    """Datasets by the settings that shape them: trials differing only in training knobs
    share one load."""

    def __init__(self):
        self._cache: dict = {}

    def get(self, config: RunConfig):
        spec = DataSpec.of(config)
        key = repr(spec)
        if key not in self._cache:
            spec.check()
            self._cache[key] = load_dataset(spec)
        return self._cache[key]


def untrained_int8(config: RunConfig, dataset, task: str) -> bytes:
    """The int8 flatbuffer of the trial's model with its initial weights.  A model tflmp
    did not build (a user's .py builder) converts in a child process, as in ``train``."""
    _, keras, _ = load()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    pre = dataset.preprocessing
    spec = parse_model(config.model)
    model = build(spec, pre.input_shape, pre.num_classes, task, trust=config.trust_model,
                  hyper=config.model_options)
    check_convertible(model)
    prepared = rewrite.prepare(model, pre.apply(dataset.raw("val")[0][:32]))
    int8_pre = pre.then(prepared.input_scale, prepared.input_offset)
    calibration = representative_samples(int8_pre.apply(dataset.raw("train")[0]),
                                         CALIBRATION_SAMPLES, config.seed)
    if spec.kind == "zoo":
        return to_int8_tflite(prepared.model, calibration)
    with tempfile.TemporaryDirectory(prefix="tflmp-tune-") as tmp:
        path = Path(tmp) / "untrained.h5"
        save_keras_model(model, path)
        job = ConversionJob(path, prepare=True, trust=config.trust_model)
        return convert_contained([job], calibration)[0]


def untrained_footprint(config: RunConfig, dataset, task: str, board: str | None = None,
                        boards_file=None) -> Footprint:
    """:func:`footprint` of :func:`untrained_int8`."""
    return footprint(read_model(untrained_int8(config, dataset, task)), board, boards_file)
