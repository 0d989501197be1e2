"""The float -> int8 recipe that a run (``tflmp train``) and each cross-validation fold
(:mod:`tflm_pipeline.cv.fold`) follow, written once: float training, int8 preparation,
QAT fine-tuning, PTQ and QAT int8 conversion, scoring in TFLM and the choice between the
int8 candidates (:func:`select_int8`).

A :class:`Recipe` works in a :class:`~tflm_pipeline.runs.RunFolder` (the run's, or a
fold's scratch folder) and on raw ``train`` / ``val`` parts; a phase already recorded in
the folder's ``stages.json`` is not trained again (``--resume``).  It lives here, beside
QAT and conversion, because it imports training (as ``quantize`` already does) and the
TFLM harness; ``training`` cannot import ``quantize``.
"""

from __future__ import annotations

import contextlib
import math
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import RunConfig, steps_per_epoch
from ..data.augment import image_augmenter, parse_augment_kind
from ..data.checks import class_weights
from ..preprocessing import Preprocessing
from ..progress import Progress
from ..record import FLOAT, PTQ_INT8, QAT_INT8, QAT_KERAS
from ..runs import RunFolder
from ..tasks import Task
from ..tflm.harness import evaluate
from ..training.fit import fit, make_optimizer
from ..training.keras_io import load_keras_model, save_keras_model, save_weights
from ..training.model_source import build, parse_model
from ..training.schedule import LrSchedule
from . import rewrite
from .int8 import (ConversionJob, check_convertible, convert_contained,
                   representative_samples, to_int8_tflite)
from .qat import load_qat, quantize

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """What :meth:`Recipe.evaluate` measured: per model key its scores on the held-out
    split (int8 candidates also ``val_<metric>``), the candidates' TFLM arenas, and the
    models' outputs per split."""

    scores: dict[str, dict]
    arenas: dict
    outputs: dict[str, dict]


def qat_needed(float_val: float, ptq_val: float, n_val: int) -> tuple[bool, str]:
    """Whether QAT has a loss to recover: PTQ int8's validation accuracy in TFLM more than
    one standard error (of an accuracy measured on ``n_val`` samples) below float's; and
    the sentence saying so for the report.  The error uses Laplace's rule of succession
    ((k + 1) / (n + 2)), so a perfect score on a few samples does not claim no error."""
    n = max(n_val, 1)
    p = (float_val * n + 1) / (n + 2)
    se_pp = 100 * math.sqrt(p * (1 - p) / n)
    drop_pp = 100 * (float_val - ptq_val)
    facts = (f"PTQ int8 scores {ptq_val:.4f} validation accuracy in TFLM, float "
             f"{float_val:.4f} (a drop of {drop_pp:.2f} pp); one standard error of a "
             f"{n_val}-sample accuracy is {se_pp:.2f} pp")
    if drop_pp > se_pp:
        return True, f"QAT ran: {facts}: PTQ lost more than that"
    return False, f"QAT skipped: {facts}: no loss QAT could measurably recover"


def select_int8(task: Task, scores: dict, candidates) -> tuple[str, str]:
    """The int8 candidate with the better validation metric in TFLM (never the held-out
    split), a tie going to QAT, and why.  An anomaly detector whose validation split holds
    no anomalies (no AUC) ranks by its fallback error instead."""
    metric, higher = task.metric, task.higher_is_better
    if task.fallback_metric and all(scores[k].get(f"val_{metric}") is None
                                    for k in candidates):
        metric, higher = task.fallback_metric, False  # no anomalies in validation
    key = f"val_{metric}"

    def rank(k):
        value = scores[k].get(key)
        return (float("-inf") if value is None else value if higher else -value,
                k == QAT_INT8)

    selected = max(candidates, key=rank)
    better = "higher" if higher else "lower"
    why = (f"{selected} has the {better} validation {metric} in TFLM: "
           + ", ".join(f"{k} {scores[k][key]:.4f}" if scores[k].get(key) is not None
                       else f"{k} n/a" for k in candidates)
           + " (ties go to QAT)")
    return selected, why


class Recipe:
    """One training's steps on raw ``parts`` ("train", "val": (x, y)) in ``folder``.

    ``preprocessing`` is the float model's; after :meth:`prepare` :attr:`preprocessing`
    is the int8 models' (the preparation may move an input scaling out of the model).
    ``dist`` (a :class:`~tflm_pipeline.training.distribute.Distribution`) or None;
    ``callbacks`` are extra Keras callbacks for float training; ``tensorboard`` writes
    the folder's tensorboard logs.
    """

    def __init__(self, folder: RunFolder, config: RunConfig, task: Task,
                 preprocessing: Preprocessing, parts: dict, *, batch: int, lr,
                 dist=None, callbacks: list | None = None, tensorboard: bool = True):
        self.folder, self.config, self.task, self.parts = folder, config, task, parts
        self.float_preprocessing = self.preprocessing = preprocessing
        self._inputs: dict[str, tuple] = {}  # split -> (preprocessing, its inputs)
        self.batch, self.lr, self.dist = batch, lr, dist
        self.callbacks = list(callbacks or [])
        self.tensorboard = tensorboard
        self.stages = folder.stages()
        self.float_layers: list[tuple[str, str]] = []
        self.augment = None
        if config.augment:
            kind, options = parse_augment_kind(config.augment)
            if kind == "image":
                self.augment = image_augmenter(**options, seed=config.seed)
        self.class_weight = None  # --class-weight auto: inverse to the train part's counts
        if config.class_weight == "auto" and task.name == "classification":
            self.class_weight = class_weights(parts["train"][1], preprocessing.num_classes)

    # --- the steps ------------------------------------------------------------------------

    def train_float(self, find_lr: Callable | None = None):
        """The best float model, trained unless the folder records it; ``find_lr(model)``
        (``--lr auto``) runs on the fresh model and sets :attr:`lr` before training."""
        c = self.config
        if "float" not in self.stages:
            pre = self.float_preprocessing
            with self.scope():
                model = build(parse_model(c.model), pre.input_shape, pre.num_classes,
                              self.task.name, reinit=c.reinit, freeze=c.freeze,
                              trust=c.trust_model, hyper=c.model_options)
            check_convertible(model)  # before training (and the range test), not after it
            if find_lr is not None:
                with self.scope():
                    find_lr(model)
            schedule = LrSchedule(c.schedule, self.lr)
            with self.scope():
                self.compile(model, schedule.keras_rate(c.epochs * self._steps_per_epoch())
                             if schedule.per_step else self.lr)
            log.info("model: %s, %s parameters; training %d epochs", parse_model(c.model).name,
                     f"{model.count_params():,}", c.epochs)
            self._fit("float", model, self.folder.float_model, save_keras_model, c.epochs,
                      c.seed, schedule, self.callbacks)
        return load_keras_model(self.folder.float_model, trust=c.trust_model)

    def prepare(self, float_model):
        """int8 preparation (:func:`~.rewrite.prepare`); from now on :attr:`preprocessing`
        is the int8 models'."""
        prepared = rewrite.prepare(float_model, self.x("val")[:32])
        for change in prepared.changes:
            log.info("int8 prep: %s", change)
        self.preprocessing = self.float_preprocessing.then(prepared.input_scale,
                                                           prepared.input_offset)
        return prepared

    def train_qat(self, prepared_model):
        """The QAT model fine-tuned from the prepared one (unless the folder records it)."""
        weights = self.folder.qat_weights
        for layer in prepared_model.layers:  # QAT fine-tunes the whole model
            layer.trainable = True
        with self.scope():
            wrapped = quantize(prepared_model)
        self.float_layers = wrapped.float_layers
        for layer, reason in wrapped.float_layers:
            log.info("QAT: layer '%s' stays float (%s)", layer, reason)
        model = wrapped.model
        if "qat" not in self.stages:
            lr = self.config.qat_lr or self.lr / 10
            with self.scope():
                self.compile(model, lr)
            log.info("QAT: fine-tuning %d epochs at lr %g", self.config.qat_epochs, lr)
            self._fit("qat", model, weights, save_weights, self.config.qat_epochs,
                      self.config.seed + 1)
        if self.dist is not None and self.dist.strategy is not None:
            # a model bound to the strategy would evaluate through it; the chief goes on alone
            return load_qat(self.folder.float_model, weights)
        model.load_weights(weights)
        return model

    def convert(self, prepared_model, qat_model) -> dict[str, bytes]:
        """PTQ int8 (and QAT int8 when ``qat_model``) flatbuffers, calibrated on the train
        part; a model tflmp did not build converts in a child process, so a converter
        crash on it ends that process only."""
        calibration = representative_samples(self.x("train"), self.config.calibration_samples,
                                             self.config.seed)
        models = {k: m for k, m in ((PTQ_INT8, prepared_model), (QAT_INT8, qat_model))
                  if m is not None}
        candidates = {}
        with Progress(len(models), "converting to int8 TFLite", summary_after=2.0) as progress:
            if parse_model(self.config.model).kind != "zoo":
                jobs = [ConversionJob(self.folder.float_model, prepare=key == PTQ_INT8,
                                      qat_weights=self.folder.qat_weights if key == QAT_INT8
                                      else None, trust=self.config.trust_model)
                        for key in models]
                candidates = dict(zip(models, convert_contained(jobs, calibration)))
            else:
                for key, model in models.items():
                    candidates[key] = to_int8_tflite(model, calibration)
                    progress.update(len(candidates))
            progress.update(len(candidates))
        return candidates

    def evaluate(self, float_model, qat_model, candidates: dict[str, bytes], held_out,
                 name: str = "test", *, workers: int | None = None,
                 label: Callable[[str], str] = lambda key: f"TFLM {key}") -> Scored:
        """Float (Keras), QAT (Keras) and each int8 candidate (TFLM) scored on the raw
        ``held_out`` (x, y) split called ``name``; the candidates also on the val part
        (``val_<metric>``, what :func:`select_int8` ranks by)."""
        task, classes = self.task, self.float_preprocessing.num_classes
        raw_x, y = held_out
        x = self.preprocessing.apply(raw_x)
        scores, outputs = {}, {}
        if float_model is not None:  # (None: float was scored already)
            # the float model keeps its own preprocessing
            float_out = float_model.predict(self.float_preprocessing.apply(raw_x),
                                            batch_size=512, verbose=0)
            scores[FLOAT] = task.score(x, y, float_out, classes)
            outputs[FLOAT] = {name: float_out}
        if qat_model is not None:
            scores[QAT_KERAS] = task.score(x, y, qat_model.predict(
                x, batch_size=512, verbose=0), classes)
        arenas = {}
        for key, flatbuffer in candidates.items():
            e = evaluate(flatbuffer, task, {"val": (self.x("val"), self.y("val")),
                                            name: (x, y)}, classes,
                         workers=workers, label=label(key))
            arenas[key] = e.arena
            outputs[key] = e.outputs
            scores[key] = {**e[name], f"val_{task.metric}": e["val"][task.metric]}
            if task.fallback_metric and e["val"][task.metric] is None:
                fallback = task.fallback_metric
                scores[key][f"val_{fallback}"] = e["val"][fallback]
        return Scored(scores, arenas, outputs)

    # --- helpers --------------------------------------------------------------------------

    def x(self, split: str):
        """The model inputs of part ``split``, prepared as the current models take them
        (kept until :attr:`preprocessing` changes: the train part of MNIST is 170 MB)."""
        kept = self._inputs.get(split)
        if kept is None or kept[0] is not self.preprocessing:
            kept = self._inputs[split] = (self.preprocessing,
                                          self.preprocessing.apply(self.parts[split][0]))
        return kept[1]

    def y(self, split: str):
        return self.parts[split][1]

    def fit_data(self, split: str):
        """(inputs, targets) for training on part ``split``, as the task learns."""
        x, y = self.x(split), self.y(split)
        rows = self.task.training_rows(y)
        if not rows.all():
            x, y = x[rows], y[rows]
        return x, self.task.targets(x, y)

    def _steps_per_epoch(self) -> int:
        rows = np.count_nonzero(self.task.training_rows(self.y("train")))
        return steps_per_epoch(int(rows), self.batch)

    def scope(self):
        return self.dist.scope() if self.dist is not None else contextlib.nullcontext()

    def compile(self, model, lr: float) -> None:
        model.compile(optimizer=make_optimizer(self.config.optimizer, lr), loss=self.task.loss,
                      metrics=list(self.task.keras_metrics))

    def _fit(self, phase: str, model, best_path, save_best, epochs: int, seed: int,
             schedule: LrSchedule | None = None, callbacks: list | None = None) -> None:
        """One training phase (float or QAT), resumable, recorded in stages.json."""
        folder = self.folder
        result = fit(model, self.fit_data("train"), self.fit_data("val"),
                     phase_dir=folder.checkpoints(phase), history_csv=folder.history(phase),
                     best_path=best_path, save_best=save_best, epochs=epochs,
                     batch_size=self.batch, patience=self.config.patience, seed=seed,
                     monitor=self.task.monitor, mode=self.task.monitor_mode,
                     augment=self.augment,
                     tensorboard_dir=folder.tensorboard(phase) if self.tensorboard else None,
                     class_weight=self.class_weight, schedule=schedule, callbacks=callbacks)
        self.stages[phase] = result.to_dict()
        folder.save_stages(self.stages)
