"""``tflmp firmware``: a ready-to-build project for one target from a run or a model.

Checks first, writes second: the model must be full int8, every op must exist in the
TFLM releases the target links, and Dense layers must be quantized the way that TFLM
computes correctly (a run's model is re-converted, and re-scored in TFLM with the run's
task, when needed).  Then the arena is sized for the target, golden vectors are computed
in the TFLM interpreter, and codegen writes the project.  ``check`` compiles it against
a TFLM source tree and runs its self-test on this host and under QEMU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codegen.c_literals import c_identifier
from ..codegen.golden import GoldenVectors
from ..codegen.project import Project, ProjectSpec, check_sketch_folder, write_firmware_project
from ..data import load_run_dataset
from ..errors import TflmpError
from ..mcu.build_check import CheckResult, check_project
from ..mcu.targets import get_target
from ..models import task_of
from ..quantize.int8 import representative_samples, to_int8_tflite
from ..quantize.qat import load_qat
from ..record import QAT_INT8
from ..runs import resolve
from ..tasks import CLASSIFICATION, Task, get_task
from ..tflite.model_info import per_channel_dense_layers, read_model, read_model_bytes
from ..tflite.quant import quantize
from ..tflm.harness import evaluate
from ..tflm.interpreter import run, tflm_version
from ..training.keras_io import load_keras_model

log = logging.getLogger(__name__)
GOLDEN_COUNT = 4


@dataclass
class FirmwareResult:
    project: Project
    checks: list[CheckResult] = field(default_factory=list)  # with check=True

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {"project": self.project.to_dict(), "checks": [c.to_dict() for c in self.checks]}


def firmware(source: str | Path, target: str, out_dir: str | Path | None = None, *,
             name: str | None = None, check: bool = False, tflm_dir: str | Path | None = None,
             qemu: bool | None = None) -> FirmwareResult:
    """Write the ``target`` project for ``source`` (run folder or ``.tflite``); with
    ``check``, build it against the TFLM tree ``tflm_dir`` and run its self-test (on
    this host, and under QEMU unless ``qemu`` is False)."""
    if check and not tflm_dir:
        raise TflmpError("--check needs --tflm-dir PATH: a TFLM source tree (e.g. the src/ of "
                         "your Arduino TFLM library, or esp-tflite-micro)")
    t = get_target(target)
    src = resolve(source)
    run = src.run
    model = read_model_bytes(src.model_path)
    info = read_model(model)
    ident = c_identifier(name if name is not None else src.default_name)
    out = Path(out_dir) if out_dir is not None else (
        run.firmware_dir(t.name) if run is not None else Path("build") / "firmware" / t.name)
    check_sketch_folder(t, out)
    if not info.is_full_int8:
        raise TflmpError(f"{src.model_path.name} has {info.inputs[0].type} input / "
                         f"{info.outputs[0].type} output; firmware needs a full-int8 model "
                         "(tflmp train writes one)")
    task = get_task(task_of(run.config.model)) if run is not None else CLASSIFICATION
    dataset = load_run_dataset(run) if run is not None else None
    notes: list[str] = []
    model, info, reconverted = _fit_dense_quantization(model, info, src, t, task, dataset)
    if reconverted:
        notes.append(reconverted)
    ops = t.registrations(info)  # every op exists in this TFLM, or a clear error
    arena = t.arena_for(info)
    if arena.unmeasured_ops:
        notes.append("ops without measured 32-bit bookkeeping ("
                     + ", ".join(arena.unmeasured_ops) + ") were sized generously; "
                     "check arena_used_bytes on the board or with --check")
    if not arena.measured_release:
        notes.append("the arena is derived from TFLM's Cortex-M sizes plus an allowance for "
                     "this board's architecture, which cannot be measured here; the board "
                     "prints arena_used_bytes at boot")
    project = write_firmware_project(ProjectSpec(
        target=t, ident=ident, out_dir=out, model=model, info=info, source=src.model_path.name,
        preprocessing=src.preprocessing, task=task.name, ops=ops, arena=arena,
        vectors=_golden_vectors(model, info, dataset), reconverted=reconverted, notes=notes))
    checks = check_project(project.out_dir, tflm_dir, qemu=qemu) if check else []
    return FirmwareResult(project, checks)


def _fit_dense_quantization(model: bytes, info, src, target, task: Task, dataset):
    """Re-convert with per-tensor Dense weights for TFLM releases that compute
    per-channel Dense layers wrong; return (model, info, note or None)."""
    layers = per_channel_dense_layers(info)
    if target.per_channel_dense or not layers:
        return model, info, None
    run = src.run
    if run is None or not run.has_record:
        raise TflmpError(
            f"{src.model_path.name} has per-channel Dense (FULLY_CONNECTED) weights (ops "
            f"{', '.join(map(str, layers))}), which {target.tflm_library} computes wrong "
            "without an error; pass the run folder so tflmp can re-convert it with one scale "
            "per layer, or choose --target esp-idf")

    record = run.record()
    key = run.candidate_key(src.model_path, record.selected)  # which conversion this file is
    if key is None:
        raise TflmpError(f"{src.model_path} has per-channel Dense weights, which "
                         f"{target.tflm_library} computes wrong, and is not a model of the run "
                         f"in {run.path}; pass the run folder so tflmp can re-convert its model")
    keras_model = (load_qat(run.float_model, run.qat_weights) if key == QAT_INT8
                   else load_keras_model(run.float_model))
    x_train, _ = dataset.inputs("train")
    calibration = representative_samples(x_train, run.config.calibration_samples,
                                         run.config.seed)
    model = to_int8_tflite(keras_model, calibration, per_channel_dense=False)
    info = read_model(model)
    x, y = dataset.inputs("test")
    score = evaluate(model, task, {"test": (x, y)}, dataset.preprocessing.num_classes,
                     info=info, label="TFLM per-tensor Dense")["test"][task.metric]
    before = record.scores[key][task.metric]
    return model, info, (f"{_value(score)} {task.metric} on the test set (per-channel Dense: "
                         f"{_value(before)}); re-converted for {target.tflm_library}")


def _value(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _golden_vectors(model: bytes, info, dataset) -> GoldenVectors:
    """Test-set samples of distinct classes when a dataset is given, else seeded random
    inputs; outputs from the TFLM interpreter."""
    t_in = info.inputs[0]
    if dataset is not None:
        x, y = dataset.inputs("test")
        picks = _distinct_classes(y, GOLDEN_COUNT)
        inputs = quantize(x[picks].reshape((len(picks), *t_in.shape[1:])), t_in)
        labels = [int(y[i]) for i in picks]
        source = f"{dataset.name} test samples {', '.join(str(i) for i in picks)}"
    else:
        rng = np.random.default_rng(int(info.sha256[:8], 16))
        limits = np.iinfo(t_in.dtype)
        inputs = rng.integers(limits.min, limits.max + 1, size=(GOLDEN_COUNT, *t_in.shape[1:]),
                              endpoint=False).astype(t_in.dtype)
        labels = [None] * GOLDEN_COUNT
        source = "seeded random inputs"
    outputs = run(model, inputs, info=info, workers=1)[0]
    return GoldenVectors(inputs, outputs, labels, source, f"tflite-micro {tflm_version()}")


def _distinct_classes(y: np.ndarray, count: int) -> list[int]:
    picks, seen = [], set()
    for i, label in enumerate(y.tolist()):
        if label not in seen:
            seen.add(label)
            picks.append(i)
        if len(picks) == count:
            break
    for i in range(len(y)):  # fewer classes than vectors: fill with the next samples
        if len(picks) == count:
            break
        if i not in picks:
            picks.append(i)
    return sorted(picks)
