"""``tflmp convert``: a ``.tflite``, a run folder, or a float Keras file -> int8 model and
its C sources (``<name>_model_data.h/.cc``, ``<name>_model_settings.h``,
``<name>_op_resolver.h``) for the default TFLM release."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from .. import codegen
from ..artifacts import write_bytes
from ..codegen.c_literals import c_identifier
from ..errors import TflmpError
from ..mcu.arena import estimate
from ..mcu.arena_plan import plan_model
from ..mcu.releases import DEFAULT_RELEASE, get_release, registrations
from ..runs import resolve
from ..tflite.model_info import read_model, read_model_bytes
from ..training.keras_io import KERAS_SUFFIXES, load_keras_model

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    name: str  # the C identifier the sources use
    model: dict  # tflite.model_info.ModelInfo.to_dict() of the int8 model
    files: list[Path]
    offline_plan: dict | None = None  # mcu.arena_plan.PlanOutcome.to_dict(); None: disabled

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "files": [str(f) for f in self.files],
                "offline_plan": self.offline_plan}


def convert(source: str | Path, out_dir: str | Path | None = None, *, name: str | None = None,
            c_array: bool = False, dataset: str | None = None, data_dir: str | None = None,
            trust_model: bool = False, offline_plan: bool = True) -> ConvertResult:
    """Convert ``source`` for a microcontroller.

    A Keras model (``.h5``/``.keras``) is first converted to full int8, calibrated on
    ``dataset`` (or the dataset of the run folder it sits in), and the ``.tflite`` is
    written to ``out_dir`` (default ``build/<name>``).  With ``c_array`` the model is
    written as C sources, sized for the default TFLM release (``tflmp firmware``
    sizes them for a target).  ``trust_model`` allows Keras files whose Lambda layers
    run stored code.  ``offline_plan`` writes a tensor placement tighter than TFLM's
    greedy one into the model when it saves arena bytes (:mod:`..mcu.arena_plan`).
    """
    src = resolve(source)
    ident = c_identifier(name if name is not None else src.default_name)
    out_dir = Path(out_dir) if out_dir is not None else Path("build") / ident
    files = []
    outcome = None
    if src.model_path.suffix in KERAS_SUFFIXES:
        flatbuffer = _convert_keras_file(src, dataset, data_dir, trust_model)
        if offline_plan:
            flatbuffer, outcome = plan_model(flatbuffer)
        files.append(write_bytes(out_dir / f"{ident}_int8.tflite", flatbuffer))
    else:
        flatbuffer = read_model_bytes(src.model_path)
        if not c_array:
            raise TflmpError(f"{src.model_path.name} is already a .tflite model; add --c-array "
                             "to emit it as C source")
        if offline_plan:
            flatbuffer, outcome = plan_model(flatbuffer)
            if outcome.applied:
                files.append(write_bytes(out_dir / f"{ident}_int8.tflite", flatbuffer))
    info = read_model(flatbuffer)
    if c_array:
        ops = registrations(info, DEFAULT_RELEASE)  # an op TFLM lacks: error, nothing written
        files += codegen.write_model_sources(
            flatbuffer, info, ident, out_dir, ops=ops,
            op_sources=get_release(DEFAULT_RELEASE).op_set_source,
            arena=estimate(info) if info.subgraphs == 1 else None,
            preprocessing=src.preprocessing, source=src.model_path.name)
    return ConvertResult(ident, info.to_dict(), files,
                         outcome.to_dict() if outcome is not None else None)


def _convert_keras_file(src, dataset, data_dir, trust: bool) -> bytes:
    # imported for Keras files only: the .tflite -> C path keeps its short start-up
    # (bench/c_array_speed.py)
    from ..data import DataSpec, load_dataset, load_run_dataset
    from ..quantize.int8 import (ConversionJob, check_convertible, convert_contained,
                                 representative_samples)
    from ..training.keras3 import is_keras3, post_training_int8

    if dataset is not None:
        spec = DataSpec(dataset, data_dir)
        spec.check()
        ds = load_dataset(spec)
        if src.preprocessing is not None:
            ds = dataclasses.replace(ds, preprocessing=src.preprocessing)
    elif src.run is not None:
        ds = load_run_dataset(src.run)
    else:
        raise TflmpError(f"converting Keras model {src.model_path.name} needs calibration "
                         "data: pass --dataset (and --data-dir)")
    x, _ = ds.inputs("train")
    seed = src.run.config.seed if src.run else 0
    calibration = representative_samples(x, seed=seed)
    try:
        model = load_keras_model(src.model_path, trust=trust)
    except TflmpError:
        if not is_keras3(src.model_path):
            raise
        # a layer tf_keras lacks: Keras 3 converts it itself (post-training int8)
        log.info("converting %s with Keras 3 (post-training int8, no QAT)",
                 src.model_path.name)
        return post_training_int8(src.model_path, calibration)
    check_convertible(model)  # one line for layers the converter cannot lower
    # the user's file converts in a child process: a converter crash ends only that
    return convert_contained([ConversionJob(src.model_path, trust=trust)], calibration)[0]
