"""``tflmp verify``: an int8 model over a dataset split in the real TFLM interpreter —
the task's metric, the confusion or anomaly scores, the host arena — and, for a run,
the parity ladder from Keras down to TFLM with the per-layer quantization error.  With
``target`` and ``tflm_dir`` the whole split also runs on the target's own TFLM build
(its tree, kernels and flags, built for this host): its metric, the share of samples
whose outputs equal the pip interpreter's bit for bit, and the first op that differs.

With ``data`` a new file or folder is read with the run's own format options and
preprocessing and scored (or, without labels, predicted) the same way, kept under
``verify/<name>/`` of the run."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifacts import write_json
from ..data import DataSpec, Preprocessing, load_dataset, load_run_dataset
from ..data.new_data import load_new_data
from ..errors import TflmpError
from ..codegen.c_literals import camel_case
from ..codegen.op_resolver import write_op_resolver
from ..mcu.arena import ArenaEstimate, estimate
from ..mcu.build_check import find_tree
from ..mcu.qemu_harness import build_qemu_harness, run_qemu, sample_indices
from ..mcu.kernel_choice import ROUNDING
from ..mcu.target_harness import build_target_harness, run_outputs, run_tensors
from ..mcu.targets import get_target
from ..models import task_for
from ..progress import Progress
from ..quantize.int8 import quantization_error
from ..quantize.qat import load_qat
from ..reports.new_data import (SOURCE_COLUMNS, per_class, prediction_counts,
                                write_predictions)
from ..reports.run_report import render_reports
from ..runs import RunFolder, resolve
from ..tasks import CLASSIFICATION, REGRESSION, get_task
from ..tflite.model_info import read_model, read_model_bytes
from ..tflite.quant import dequantize, quantize
from ..tflite import offline_plan
from ..tflm import interpreter, parity
from ..tflm.harness import check_model_for, evaluate, predict
from ..tflm.interpreter import ArenaSize
from ..training.keras_io import load_keras_model

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class VerifyResult:
    model: Path
    sha256: str
    tflite_bytes: int
    dataset: str
    split: str
    samples: int
    labels: list[str]
    ops: list[str]
    task: str
    scores: dict  # the task's metrics on the split
    arena: ArenaSize  # 64-bit host, measured
    arena_32bit: ArenaEstimate | None  # derived for the default TFLM release
    parity: dict | None = None  # the ladder (with the disagreeing sample indices)
    per_layer_error: list[dict] | None = None
    reports: list[Path] = field(default_factory=list)  # re-rendered after a ladder
    target: dict | None = None  # the split on the target's own TFLM build (TargetAgreement)
    new_data: dict | None = None  # verify --data: what verify/<name>/result.json holds
    written: list[Path] = field(default_factory=list)  # verify --data: result and predictions
    qemu: dict | None = None  # samples on the target's Cortex-M4 build under QEMU

    @property
    def record_parity(self) -> dict | None:
        """The ladder as the run record keeps it (without the sample indices)."""
        if self.parity is None:
            return None
        return {k: v for k, v in self.parity.items() if k != "disagreeing_samples"}

    def to_dict(self) -> dict:
        extra = {} if self.parity is None else {"parity": self.parity,
                                                "per_layer_error": self.per_layer_error}
        if self.target is not None:
            extra["target"] = self.target
        if self.new_data is not None:
            extra["new_data"] = self.new_data
        if self.qemu is not None:
            extra["qemu"] = self.qemu
        return {**extra, "model": str(self.model), "sha256": self.sha256,
                "tflite_bytes": self.tflite_bytes, "dataset": self.dataset, "split": self.split,
                "samples": self.samples, "labels": self.labels, "ops": self.ops,
                "metrics": self.scores, **self.arena.to_dict(),
                "arena_32bit": self.arena_32bit.to_dict() if self.arena_32bit else None}


def verify(model_path: str | Path, *, dataset: str | None = None, data_dir: str | None = None,
           preprocessing: str | Path | None = None, split: str = "test",
           workers: int | None = None, ladder: bool = False, tolerance: int = 0,
           target: str | None = None, tflm_dir: str | Path | None = None,
           data: str | Path | None = None, qemu: int | None = None,
           kernels: str = "target") -> VerifyResult:
    """Evaluate a ``.tflite`` (or a run folder's selected model) in TFLM.

    Preprocessing comes from ``preprocessing``, else the ``preprocessing.json`` of the
    run folder holding the model (on the run's own data), else the dataset's default.
    ``ladder`` (run folders only) adds the parity ladder Keras float -> Keras QAT ->
    TFLite reference -> TFLM, the first diverging layer when TFLite and TFLM differ by
    more than ``tolerance`` int8 steps, and the per-layer quantization error; they are
    also stored in the run's report.json and its reports re-rendered.

    ``target`` with ``tflm_dir`` (the TFLM tree that target links) scores the split again
    with that tree built for this host (cached like ``firmware --check``'s library), with
    ``kernels`` "target" (the optimized kernels its board build links, from their portable
    C: CMSIS-NN, ESP-NN ANSI C), "optimized" (ESP-NN's default generic C) or "reference".
    ``qemu`` N also runs N evenly spaced samples of the split on that tree's Cortex-M4
    build under QEMU (the 32-bit proof), with the instructions per inference.

    ``data`` (run folders only) is a new file or folder in the run's format, read with the
    run's recorded options and preprocessing: with labels, the task's metrics and the
    per-class table; always ``predictions.csv``; both under ``verify/<name>/`` of the
    run, whose reports gain a "New data" section.
    """
    if split not in SPLITS:
        raise TflmpError(f"--split must be train, val or test, got '{split}'")
    if (target is None) != (tflm_dir is None):
        raise TflmpError("--target and --tflm-dir go together: the target names the TFLM "
                         "release and ops, the tree is the source it links")
    if qemu is not None and tflm_dir is None:
        raise TflmpError("--qemu N runs the target's Cortex-M4 build: add --target and "
                         "--tflm-dir")
    if qemu is not None and qemu < 1:
        raise TflmpError(f"--qemu needs a number of samples >= 1, got {qemu}")
    tree = find_tree(Path(tflm_dir), kernels) if tflm_dir is not None else None  # checked first
    the_target = get_target(target) if target is not None else None
    src = resolve(model_path)
    run = src.run
    model = read_model_bytes(src.model_path)
    info = read_model(model)
    if data is not None:
        if run is None:
            raise TflmpError("--data needs a tflmp run folder (it reads the data with the "
                             "run's format options and preprocessing); pass the run folder")
        if dataset is not None or preprocessing is not None or ladder or split != "test" \
                or the_target is not None:
            raise TflmpError("--data scores new data with the run's own options; drop "
                             "--dataset, --preprocessing, --split, --ladder and --target")
        return _new_data(run, src.model_path, model, info, data, workers)
    if preprocessing is not None and not Path(preprocessing).is_file():
        raise TflmpError(f"--preprocessing {preprocessing} does not exist")
    if ladder and (run is None or not run.float_model.is_file()):
        raise TflmpError("--ladder needs a tflmp run folder (it runs the run's Keras models); "
                         "pass the run folder or a model inside one")
    if dataset is None or (run is not None and dataset == run.config.dataset):
        if run is None:
            raise TflmpError("--dataset is required for a model outside a tflmp run folder")
        ds = load_run_dataset(run)  # the run's data, splits and preprocessing
    else:
        spec = DataSpec(dataset, data_dir)
        spec.check()
        ds = load_dataset(spec)
    if preprocessing is not None:
        ds = dataclasses.replace(ds, preprocessing=Preprocessing.load(preprocessing))
    x, y = ds.inputs(split)
    task = get_task(task_for(run.config)) if run is not None else CLASSIFICATION
    result = evaluate(model, task, {split: (x, y)}, ds.preprocessing.num_classes, info=info,
                      workers=workers, label=f"TFLM {split}")
    out = VerifyResult(src.model_path, info.sha256, info.size, ds.name, split, int(len(y)),
                       ds.preprocessing.labels, info.op_names, task.name, result[split],
                       result.arena, estimate(info) if info.subgraphs == 1 else None)
    if the_target is not None:
        out.target = _on_target(the_target, tree, src.model_path, model, info, task, x, y,
                                ds.preprocessing.num_classes, result.arena.bytes, workers)
    if qemu is not None:
        out.qemu = _on_qemu(the_target, tree, src.model_path, model, info, x, qemu,
                            result.arena.bytes)
    if ladder:
        out.parity, out.per_layer_error = _ladder(run, ds, split, model, task, tolerance, workers)
        if run.has_record:
            rec = run.record()
            run.write_record(dataclasses.replace(rec, parity=out.record_parity,
                                                 per_layer_error=out.per_layer_error))
            out.reports = list(render_reports(run.path))
            for path in out.reports:
                log.info("wrote %s", path)
    return out


def _new_data(run: RunFolder, model_path: Path, model: bytes, info, data, workers
              ) -> VerifyResult:
    """A new file or folder through the run's model in TFLM: metrics when it has labels,
    predictions always, written under ``verify/<name>/`` and into the run's reports."""
    pre = run.preprocessing
    if pre is None:
        raise TflmpError(f"{run.path} has no {RunFolder.PREPROCESSING}; finish training first")
    task = get_task(task_for(run.config))
    if task not in (CLASSIFICATION, REGRESSION):
        raise TflmpError(f"--data scores classification and regression runs; {run.path} is "
                         f"a {task.name} run: score its data with --dataset")
    classify = task is CLASSIFICATION
    new = load_new_data(data, run.config, pre, regression=not classify)
    check_model_for(info, task, pre.num_classes)
    x = pre.apply(new.x)
    arena, outputs = predict(model, x, info=info, workers=workers, label=f"TFLM {new.name}")
    scores = task.score(x, new.y, outputs, pre.num_classes) if new.labelled else {}
    folder = run.new_data_dir(new.name)
    predictions = write_predictions(folder / RunFolder.NEW_DATA_PREDICTIONS, new.source_kind,
                                    new.sources, outputs, pre.labels, classify, new.y)
    doc = {"name": new.name, "data": str(new.path.resolve()), "model": str(model_path),
           "sha256": info.sha256, "task": task.name, "samples": int(len(x)),
           "labelled": new.labelled, "labels": pre.labels, "classes": new.classes,
           "metrics": scores,
           "per_class": per_class(scores["confusion"], pre.labels)
           if scores and classify else None,
           "predicted_counts": prediction_counts(outputs, pre.labels) if classify else None,
           "predictions": str(predictions),
           "source": f"{new.source_kind}: {SOURCE_COLUMNS[new.source_kind]}", "notes": new.notes}
    written = [write_json(folder / RunFolder.NEW_DATA_RESULT, doc), predictions]
    out = VerifyResult(model_path, info.sha256, info.size, new.name, "new data", int(len(x)),
                       pre.labels, info.op_names, task.name, scores, arena,
                       estimate(info) if info.subgraphs == 1 else None, new_data=doc,
                       written=written)
    if run.has_record:
        out.reports = list(render_reports(run.path))
    return out


def _on_target(target, tree, model_path: Path, model: bytes, info, task, x, y,
               num_classes: int, host_arena: int, workers) -> dict:
    """The split on ``target``'s TFLM tree built for this host, against the pip
    interpreter: the task's metric on each, bit-exact share, largest output difference
    and the first op that differs (on the first differing sample)."""
    ops = target.registrations(info)  # every op exists in that release, or a clear error
    q = quantize(x.reshape((-1, *info.inputs[0].shape[1:])), info.inputs[0])
    arena = 2 * host_arena + 65536  # another TFLM version may need more; outputs do not care
    reference = interpreter.run(model, q, info=info, workers=workers, label="TFLM (pip)")[0]
    with tempfile.TemporaryDirectory(prefix="tflmp-verify-target-") as tmp:
        tmp = Path(tmp)
        write_op_resolver(info, "model", tmp, ops=ops, op_sources=target.op_sources)
        build = build_target_harness(tree, tmp, "model", camel_case("model"), tmp)
        outputs = run_outputs(build, model_path, info, q, arena, workers=workers,
                              label=f"TFLM ({target.name} build)")
        n = len(q)
        diff = np.abs(outputs.reshape(n, -1).astype(np.int64)
                      - reference.reshape(n, -1).astype(np.int64)).max(axis=1)
        differing = np.flatnonzero(diff)
        divergence = None
        if len(differing):
            pick = q[differing[:1]]
            bare = tmp / "without_offline_plan.tflite"  # preserve-all-tensors refuses a plan
            bare.write_bytes(offline_plan.strip(model))
            theirs = run_tensors(build, bare, info, pick, arena)
            if theirs is not None:
                ours = interpreter.all_tensors(model, pick, info=info)
                divergence = parity.first_differing_op(info, ours, theirs)
    t_out = info.outputs[0]
    score = task.score(x, y, dequantize(outputs, t_out), num_classes)
    pip_score = task.score(x, y, dequantize(reference, t_out), num_classes)
    return {"target": target.name, "tflm_library": target.tflm_library,
            "build": build.description, "kernels": tree.kernel_choice, "rounding": ROUNDING,
            "samples": int(n),
            "metric": task.metric, "value": score[task.metric],
            "pip_value": pip_score[task.metric], "scores": score,
            "bit_exact_share": float((diff == 0).mean()), "max_diff": int(diff.max()),
            "differing_samples": differing[:20].tolist(), "first_divergence": divergence}


def _on_qemu(target, tree, model_path: Path, model: bytes, info, x, n: int,
             host_arena: int) -> dict:
    """``n`` evenly spaced samples on ``target``'s tree built for the Cortex-M4 and run
    under QEMU: outputs against the pip interpreter byte for byte, and the counted
    instructions per inference."""
    ops = target.registrations(info)
    picks = sample_indices(len(x), n)
    q = quantize(x[picks].reshape((-1, *info.inputs[0].shape[1:])), info.inputs[0])
    reference = interpreter.run(model, q, info=info, label="TFLM (pip)")[0]
    arena = 2 * host_arena + 65536  # as on the host build: another TFLM may need more
    tree = tree.for_target(target)  # the board build's optimisation level
    with tempfile.TemporaryDirectory(prefix="tflmp-verify-qemu-") as tmp:
        tmp = Path(tmp)
        write_op_resolver(info, "model", tmp, ops=ops, op_sources=target.op_sources)
        elf = build_qemu_harness(tree, tmp, "model", camel_case("model"), tmp, arena)
        run = run_qemu(elf, model_path, info, q)
    diff = np.abs(run.outputs.reshape(len(q), -1).astype(np.int64)
                  - reference.reshape(len(q), -1).astype(np.int64)).max(axis=1)
    return {"target": target.name, "platform": f"qemu-cortex-m4 (32-bit, {tree.optimize})",
            "build": tree.cortex_m4_build,
            "samples": len(picks), "sample_indices": picks,
            "bit_exact_share": float((diff == 0).mean()), "max_diff": int(diff.max()),
            "differing_samples": [picks[i] for i in np.flatnonzero(diff)[:20]],
            "instructions_per_inference": run.median_instructions,
            "instructions": run.instructions, "op_instructions": run.op_instructions}


def _ladder(run, ds, split, model, task, tolerance, workers) -> tuple[dict, list[dict]]:
    """The parity ladder (with the first divergence) and the per-layer error of a run's
    selected model on ``split``."""
    float_model = load_keras_model(run.float_model)
    qat_model = load_qat(run.float_model, run.qat_weights) if run.qat_weights.is_file() else None
    raw, y = ds.raw(split)
    x_float = run.float_preprocessing.apply(raw)
    x_int8 = ds.preprocessing.apply(raw)
    # one step per stage; TFLM's own run inside the ladder draws its bar too
    progress = Progress(3, "parity ladder, first divergence, per-layer error",
                        summary_after=2.0)
    result = parity.ladder(float_model, qat_model, model, x_float, x_int8, y, task,
                           ds.preprocessing.num_classes, workers=workers)
    progress.update(1)
    divergence = None
    if result["tflm_vs_tflite"]["max_diff"] > tolerance:
        info = read_model(model)
        picks = result["disagreeing_samples"][:8]
        q = quantize(x_int8[picks].reshape((-1, *info.inputs[0].shape[1:])), info.inputs[0])
        divergence = parity.first_divergence(model, q, tolerance)
    result["first_divergence"] = divergence
    progress.update(2)
    x_train = run.float_preprocessing.apply(ds.x_train)
    layers = quantization_error(float_model, x_train[:200], x_float[:50])
    progress.update(3)
    progress.close()
    return result, layers
