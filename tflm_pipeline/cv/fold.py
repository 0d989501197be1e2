"""One cross-validation fold, trained in its own process with the run's recipe: float
training, int8 preparation, QAT fine-tuning, PTQ and QAT int8 conversion, then the float
model (Keras) and both int8 models (TFLM) scored on the fold's held-out part.

:func:`run_fold` is what the stage's process pool calls; everything it needs comes in a
picklable :class:`FoldJob`, and it returns the fold's row of ``report.json`` (plain
numbers only).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..preprocessing import Preprocessing
from ..record import FLOAT, PTQ_INT8, QAT_INT8

log = logging.getLogger(__name__)

# test hook: a fold whose 1-based index is in this comma-separated list raises before it
# trains (tests simulate an interrupted run with it)
FAIL_ENV = "TFLMP_CV_FAIL_FOLDS"
SELECTED = "selected_int8"  # the int8 candidate the run's rule picks on the fold's val part


@dataclass
class FoldJob:
    index: int  # 1-based
    config: dict  # RunConfig.to_dict()
    task: str
    preprocessing: Preprocessing  # the float model's
    parts: dict  # "train"/"val"/"held_out" -> (raw x, y)
    batch: int
    lr: float
    scratch: str  # the fold's working folder
    tf_threads: int | None  # None: TensorFlow's default
    tflm_workers: int | None


def run_fold(job: FoldJob) -> dict:
    """Train and score one fold; its log and Keras output go to ``scratch/fold.log`` and
    ``scratch/keras.log``."""
    scratch = Path(job.scratch)
    shutil.rmtree(scratch, ignore_errors=True)  # a fold killed midway starts again
    scratch.mkdir(parents=True)
    handler = logging.FileHandler(scratch / "fold.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with open(scratch / "keras.log", "a") as out, contextlib.redirect_stdout(out):
            return _run(job, scratch)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _run(job: FoldJob, scratch: Path) -> dict:
    if str(job.index) in os.environ.get(FAIL_ENV, "").split(","):
        raise RuntimeError(f"fold {job.index} failed on purpose ({FAIL_ENV})")
    from ..tf_env import load

    tf, keras, _ = load()
    if job.tf_threads:  # before TensorFlow's first op
        tf.config.threading.set_intra_op_parallelism_threads(job.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.tf_threads)
    from ..data.augment import image_augmenter, parse_augment_kind
    from ..data.checks import class_weights
    from ..quantize import rewrite
    from ..quantize.int8 import representative_samples, to_int8_tflite
    from ..quantize.qat import quantize
    from ..tasks import get_task
    from ..tflm.harness import evaluate
    from ..training.fit import fit, make_optimizer
    from ..training.keras_io import load_keras_model, save_keras_model, save_weights
    from ..training.model_source import build, parse_model
    from ..training.schedule import LrSchedule

    t0 = time.monotonic()
    log.info("fold %d: %s", job.index, " / ".join(
        f"{len(y)} {name}" for name, (_, y) in job.parts.items()))
    c = RunConfig.from_dict(job.config)
    task = get_task(job.task)
    pre = job.preprocessing
    classes = pre.num_classes
    keras.utils.set_random_seed(c.seed + job.index)
    raw = job.parts
    augment = None
    if c.augment:
        kind, options = parse_augment_kind(c.augment)
        if kind == "image":
            augment = image_augmenter(**options, seed=c.seed)
    weights = (class_weights(raw["train"][1], classes)
               if c.class_weight == "auto" and task.name == "classification" else None)

    def fit_data(p: Preprocessing, split: str):
        x, y = p.apply(raw[split][0]), raw[split][1]
        rows = task.training_rows(y)
        return x[rows], task.targets(x[rows], y[rows])

    def compile_(model, lr):
        model.compile(optimizer=make_optimizer(c.optimizer, lr), loss=task.loss,
                      metrics=list(task.keras_metrics))

    def train(phase, model, p, best, save, epochs, seed, schedule=None):
        return fit(model, fit_data(p, "train"), fit_data(p, "val"),
                   phase_dir=scratch / "checkpoints" / phase,
                   history_csv=scratch / f"history_{phase}.csv", best_path=best,
                   save_best=save, epochs=epochs, batch_size=job.batch, patience=c.patience,
                   seed=seed, monitor=task.monitor, mode=task.monitor_mode, augment=augment,
                   class_weight=weights, schedule=schedule).to_dict()

    model = build(parse_model(c.model), pre.input_shape, classes, task.name,
                  reinit=c.reinit, freeze=c.freeze, trust=c.trust_model, hyper=c.model_options)
    compile_(model, job.lr)
    float_path = scratch / "float_best.h5"
    phases = {"float": train("float", model, pre, float_path, save_keras_model, c.epochs,
                             c.seed, LrSchedule(c.schedule, job.lr))}
    float_model = load_keras_model(float_path, trust=c.trust_model)
    scores = {FLOAT: task.score(pre.apply(raw["held_out"][0]), raw["held_out"][1],
                                float_model.predict(pre.apply(raw["held_out"][0]),
                                                    batch_size=512, verbose=0), classes)}
    prepared = rewrite.prepare(float_model, pre.apply(raw["val"][0])[:32])
    int8_pre = pre.then(prepared.input_scale, prepared.input_offset)
    models = {PTQ_INT8: prepared.model}
    if c.qat_epochs:
        for layer in prepared.model.layers:
            layer.trainable = True
        qat = quantize(prepared.model).model
        compile_(qat, c.qat_lr or job.lr / 10)
        qat_path = scratch / "qat_best_weights.h5"
        phases["qat"] = train("qat", qat, int8_pre, qat_path, save_weights, c.qat_epochs,
                              c.seed + 1)
        qat.load_weights(qat_path)
        models[QAT_INT8] = qat
    x_train = int8_pre.apply(raw["train"][0])
    calibration = representative_samples(x_train, c.calibration_samples, c.seed)
    splits = {name: (int8_pre.apply(raw[name][0]), raw[name][1]) for name in ("val", "held_out")}
    val_metric = {}
    for key, m in models.items():
        e = evaluate(to_int8_tflite(m, calibration), task, splits, classes,
                     workers=job.tflm_workers, label=f"fold {job.index} {key}")
        scores[key] = e["held_out"]
        val_metric[key] = e["val"][task.metric]
    # the run's rule: better validation metric in TFLM, ties to QAT
    selected = max(val_metric, key=lambda k: (task.rank(val_metric[k]), k == QAT_INT8))
    scores[SELECTED] = dict(scores[selected])
    return {"fold": job.index,
            "samples": {name: int(len(raw[name][1])) for name in ("train", "val", "held_out")},
            "scores": {k: _plain(v) for k, v in scores.items()},
            "selected": selected, "phases": phases,
            "seconds": round(time.monotonic() - t0, 1)}


def _plain(scores: dict) -> dict:
    """The scalar metrics of a task's score dict (no confusion matrices)."""
    return {k: float(v) for k, v in scores.items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}
