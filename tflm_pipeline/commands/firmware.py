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
from ..data import DataSpec, load_dataset, load_run_dataset
from ..errors import TflmpError
from ..mcu.arena_plan import plan_model
from ..mcu.build_check import CheckResult, check_project, find_tree
from ..mcu.targets import get_target
from ..models import task_for
from ..quantize.int8 import representative_samples, to_int8_tflite
from ..quantize.qat import load_qat
from ..record import QAT_INT8
from ..runs import resolve
from ..tasks import CLASSIFICATION, Task, get_task
from ..tflite.model_info import per_channel_dense_layers, read_model, read_model_bytes
from ..tflite.quant import quantize
from ..tflite.requantize import per_tensor_dense
from ..tflm import interpreter
from ..tflm.harness import evaluate
from ..training.keras_io import load_keras_model

log = logging.getLogger(__name__)
GOLDEN_COUNT = 4
RANDOM_INPUTS = 64  # inputs a re-quantization is measured on when no data is given


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
             name: str | None = None, task: str | None = None,
             labels: list[str] | None = None, dataset: str | None = None,
             data_dir: str | None = None, check: bool = False,
             tflm_dir: str | Path | None = None, qemu: bool | None = None,
             offline_plan: bool = True) -> FirmwareResult:
    """Write the ``target`` project for ``source`` (run folder or ``.tflite``); with
    ``check``, build it against the TFLM tree ``tflm_dir`` and run its self-test (on
    this host, and under QEMU unless ``qemu`` is False).

    A model from a run has the run's task and class names.  For any other ``.tflite``,
    ``task`` says what its output is (default classification), ``labels`` names the
    classes (default ``class_0`` ... ``class_<N-1>``), and ``dataset`` gives test data
    for the golden vectors and for measuring a Dense re-quantization.  ``offline_plan``
    writes a tighter tensor placement than TFLM's into the model when it saves arena
    bytes on the target's TFLM releases (:mod:`..mcu.arena_plan`).
    """
    if check and not tflm_dir:
        raise TflmpError("--check needs --tflm-dir PATH: a TFLM source tree (e.g. the src/ of "
                         "your Arduino TFLM library, or esp-tflite-micro)")
    if tflm_dir and not check:
        raise TflmpError("--tflm-dir is the tree --check builds against; add --check, or drop "
                         "--tflm-dir")
    # a tree it cannot build is refused before anything is written
    tree = find_tree(Path(tflm_dir)) if check else None
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
    dataset = _dataset(run, dataset, data_dir)
    preprocessing = src.preprocessing or (dataset.preprocessing if dataset else None)
    the_task, class_names = _task_and_labels(run, preprocessing, info, task, labels)
    notes: list[str] = []
    model, info, reconverted = _fit_dense_quantization(model, info, src, t, the_task, dataset)
    if reconverted:
        notes.append(reconverted)
    if offline_plan:
        model, outcome = plan_model(model, t.releases[0])
        if outcome.applied:
            info = read_model(model)
            notes.append(f"offline memory plan in the model: {outcome.reason}")
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
        preprocessing=preprocessing, output=the_task.firmware_output,
        labels=class_names, ops=ops, arena=arena,
        vectors=_golden_vectors(model, info, dataset), reconverted=reconverted, notes=notes))
    checks = check_project(project.out_dir, tree, qemu=qemu) if tree is not None else []
    return FirmwareResult(project, checks)


def _dataset(run, dataset: str | None, data_dir: str | None):
    """The run's data with its splits, or the data given for a model from outside a run."""
    if run is not None:
        if dataset is not None:
            raise TflmpError("a run's firmware uses the run's data; drop --dataset")
        return load_run_dataset(run)
    if dataset is None:
        return None
    spec = DataSpec(dataset, data_dir)
    spec.check()
    return load_dataset(spec)


def _task_and_labels(run, preprocessing, info, task: str | None, labels: list[str] | None):
    """The task the project's runner serves and its class names (empty unless it
    classifies)."""
    if run is not None:
        run_task = get_task(task_for(run.config))
        if task is not None and task != run_task.name:
            raise TflmpError(f"the run's model is a {run_task.name} model; drop --task {task}")
        the_task = run_task
    else:
        the_task = get_task(task) if task is not None else CLASSIFICATION
    if the_task.firmware_output != "class":
        if labels:
            raise TflmpError(f"--labels names classes; a {the_task.name} model has none")
        return the_task, []
    outputs = info.outputs[0].elements
    names = list(labels) if labels else (preprocessing.labels if preprocessing
                                         else [f"class_{i}" for i in range(outputs)])
    if len(names) != outputs:
        raise TflmpError(f"{len(names)} labels for a model with {outputs} output values; give "
                         f"one label per output with --labels")
    return the_task, names


def _fit_dense_quantization(model: bytes, info, src, target, task: Task, dataset):
    """Re-convert with per-tensor Dense weights for TFLM releases that compute
    per-channel Dense layers wrong; return (model, info, note or None)."""
    layers = per_channel_dense_layers(info)
    if target.per_channel_dense or not layers:
        return model, info, None
    run = src.run
    if run is None or not run.has_record:
        return _requantize_dense(model, info, target, task, dataset, layers)

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


def _requantize_dense(model: bytes, info, target, task: Task, dataset, layers):
    """A model from outside a run: its per-channel Dense weights re-quantized to one scale
    per layer from the int8 weights, and what that changes measured in TFLM (on the
    test split of ``dataset`` when given, else on seeded random inputs)."""
    new = per_tensor_dense(model)
    new_info = read_model(new)
    where = f"{len(layers)} per-channel Dense layer(s) re-quantized to one scale each"
    if dataset is not None:
        x, y = dataset.inputs("test")
        scores = [evaluate(m, task, {"test": (x, y)}, dataset.preprocessing.num_classes,
                           label="TFLM Dense re-quantization")["test"][task.metric]
                  for m in (model, new)]
        return new, new_info, (f"{_value(scores[1])} {task.metric} on the test set of "
                               f"{dataset.name} (per-channel: {_value(scores[0])}); {where} "
                               f"for {target.tflm_library}")
    t_in, t_out = info.inputs[0], info.outputs[0]
    rng = np.random.default_rng(0)
    limits = np.iinfo(t_in.dtype)
    x = rng.integers(limits.min, limits.max + 1, (RANDOM_INPUTS, *t_in.shape[1:]),
                     endpoint=False).astype(t_in.dtype)
    before, after = (interpreter.run(m, x, info=i)[0]
                     for m, i in ((model, info), (new, new_info)))
    steps = int(np.abs(before.astype(np.int32) - after.astype(np.int32)).max())
    agree = task.agreement(after, before)
    same = f", the same top class on {agree:.0%}" if agree is not None else ""
    return new, new_info, (f"outputs change by up to {steps} int8 steps "
                           f"({steps * t_out.scales[0]:.3g} in output units) on "
                           f"{RANDOM_INPUTS} random inputs{same}; {where} for "
                           f"{target.tflm_library} (pass --dataset to measure the accuracy)")


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
    outputs = interpreter.run(model, inputs, info=info, workers=1)[0]
    return GoldenVectors(inputs, outputs, labels, source,
                         f"tflite-micro {interpreter.tflm_version()}")


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
