"""``tflmp train``: data -> float training -> QAT -> int8 (PTQ and QAT) -> TFLM evaluation
-> run record and reports, all in one run folder that ``--resume`` picks up after an
interruption."""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..artifacts import read_json, write_bytes, write_json
from ..config import RunConfig
from ..data import DataSpec, load_dataset, task_hint
from ..data.checks import check_dataset, class_weights
from ..data.spec import with_absolute_paths
from ..data.augment import image_augmenter, parse_augment_kind
from ..errors import TflmpError
from ..mcu.arena import estimate
from ..mcu.arena_plan import plan_model
from ..mcu.device_profile import device_profile
from ..models import task_for
from ..progress import Progress
from ..quantize import rewrite
from ..quantize.int8 import (ConversionJob, check_convertible, convert_contained,
                             representative_samples, to_int8_tflite)
from ..quantize.qat import load_qat, quantize
from ..record import (FLOAT, PTQ_INT8, QAT_INT8, QAT_KERAS, Int8Preparation, Ledger,
                      ModelFacts, RunRecord, TrainingFacts)
from ..reports.diagnose import diagnose
from ..reports.plots import plot_lr_range, plot_run_curves
from ..reports.run_report import render_reports
from ..runs import RunFolder
from ..tasks import Task, Threshold, get_task, verdict_metrics
from ..tf_env import load
from ..tflite.model_info import read_model
from ..tflm.harness import anomaly_scores, anomaly_threshold, evaluate
from ..training.distribute import Distribution
from ..training.fit import auto_batch_size, fit, make_optimizer
from ..training.keras_io import load_keras_model, save_keras_model, save_weights
from ..training.lr_range import LrRange, lr_range_test
from ..training.schedule import LrSchedule
from ..training.model_source import ModelSpec, build, declared_task, parse_model
from .verify import verify

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A finished run: its folder, its record and the reports written from it.
    ``record`` is None for a multi-worker run's non-chief worker, which writes nothing."""

    run_dir: Path
    record: RunRecord | None
    reports: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"run_dir": str(self.run_dir),
                "record": self.record.to_dict() if self.record else None,
                "reports": [str(p) for p in self.reports]}


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


def default_run_dir(config: RunConfig, model: ModelSpec) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model.name}-{Path(config.dataset).stem}-{stamp}"


def train(config: RunConfig | None = None, out: str | Path | None = None, *,
          resume: str | Path | None = None, command: list[str] | None = None,
          ladder: bool = False, callbacks: list | None = None) -> TrainResult:
    """Run (or resume) the whole chain and return the run record written to report.json.

    ``callbacks`` are extra Keras callbacks for float training (``tflmp tune`` prunes
    weak trials with one).  ``ladder`` adds the parity ladder and per-layer quantization error of the selected
    model (as ``tflmp verify --ladder``) to the record.

    Raises TflmpError after writing everything when the selected int8 model loses more
    than ``config.max_drop`` points against float.  With ``config.strategy``
    "multi-worker", workers other than the chief train in a scratch folder and return a
    result without a record after QAT (:mod:`tflm_pipeline.training.distribute`).
    """
    t_start = time.monotonic()
    saved = RunFolder.open(resume) if resume is not None else None
    config = saved.config if saved is not None else (config or RunConfig())
    config.validate()  # every check that needs no TensorFlow comes first: they are instant
    model_spec = parse_model(config.model)
    if (config.reinit or config.freeze) and model_spec.kind == "zoo":
        raise TflmpError("--reinit and --freeze apply to a saved Keras model (--model "
                         "path.h5|.keras|SavedModel); a zoo model trains from scratch")
    spec = DataSpec.of(config)
    spec.check()
    if saved is not None and config.strategy == "multi-worker":
        raise TflmpError("--resume continues single-process runs; a multi-worker run restarts: "
                         "start all workers again with a new --out")
    # Created first: MultiWorkerMirroredStrategy must exist before any TensorFlow op runs
    # (and a bad TF_CONFIG is reported before TensorFlow loads).
    dist = Distribution(config.strategy)
    t_import = time.monotonic()
    _, keras, _ = load()
    t_import = time.monotonic() - t_import
    if saved is None:  # the task is decided once and kept in config.json
        config = dataclasses.replace(
            config, model=model_spec.text,
            task=(config.task or task_hint(spec) or declared_task(model_spec)
                  or "classification"))
    if saved is not None:
        run = saved
    else:
        if not dist.is_chief:
            out = Path(tempfile.mkdtemp(prefix=f"tflmp-{dist.task_type}{dist.task_index}-"))
        path = Path(out) if out is not None else default_run_dir(config, model_spec)
        existed = path.exists()
        run = RunFolder.create(path, with_absolute_paths(config))
    keras.utils.set_random_seed(config.seed)
    try:
        training = _Training(run, config, spec, dist, callbacks)
        training.timings = {"tensorflow_import": t_import, **training.timings}
        record = training.execute(t_start, command or sys.argv, ladder)
    except BaseException:
        # a run that failed before its first saved epoch is removed: the retry starts
        # afresh instead of being told to resume what cannot resume
        if saved is None and not run.has_progress():
            run.discard(keep_folder=existed)
        raise
    if record is None:
        return TrainResult(run.path, None)
    reports = training.reports
    row, unit = record.selected_row, record.ledger.unit
    if row.drop is not None and row.drop > config.max_drop:
        worse = "points below" if unit == "pp" else "% worse than"
        raise TflmpError(
            f"the selected int8 model ({record.selected}) scores {row.value:.4f} "
            f"{record.metric} in TFLM, {row.drop:.2f} {worse} float "
            f"({record.ledger.rows[FLOAT].value:.4f}), more than --max-drop "
            f"{config.max_drop:g}; the run is kept in {run.path}: try more --qat-epochs or a "
            f"lower --qat-lr (`tflmp doctor {run.path}` shows the worst layer)")
    return TrainResult(run.path, record, reports)


class _Training:
    """One training run's folder, settings, data and bookkeeping, shared by its steps."""

    def __init__(self, run: RunFolder, config: RunConfig, spec, dist, callbacks=None):
        self.run, self.dist = run, dist
        self.float_callbacks = list(callbacks or [])
        self.task: Task = get_task(task_for(config))
        t_data = time.monotonic()
        self.dataset = load_dataset(spec)
        # the settings left open, decided for this data (config.FAST / CLASSIC) and saved
        n_train = len(self.dataset.y_train)
        self.config = config = config.resolved(n_train, auto_batch_size(n_train))
        if run.config != with_absolute_paths(config):
            run.save_config(with_absolute_paths(config))
        self.qat_decision: str | None = None  # why QAT ran or not (config.qat_if_needed)
        run.check_same_data(self.dataset.fingerprint())
        run.save_splits(self.dataset.split_ids())
        self.data_checks = check_dataset(self.dataset)
        for leak in self.data_checks.leaks:
            log.warning("data leak: %s", leak)
        weights = self._class_weight()
        if weights:
            log.info("class weights (--class-weight auto): %s",
                     ", ".join(f"{k} {v:.3g}" for k, v in weights.items()))
        self.stages = run.stages()
        self.timings: dict[str, float] = {"data": time.monotonic() - t_data}
        self.float_layers: list[tuple[str, str]] = []
        self.reports: list[Path] = []
        self.preprocessing = self.dataset.preprocessing
        # the float Keras model keeps its own inputs if int8 preparation moves a layer out
        run.save_preprocessing(self.preprocessing, float_model=True)
        self.batch = config.batch_size or auto_batch_size(len(self.dataset.y_train))
        # --lr auto: the rate the range test chose (read back on --resume, never redone)
        self.lr_range = self._saved_lr_range() if config.lr_auto else None
        self.lr = self.lr_range.chosen if self.lr_range is not None else config.lr
        self.augment = None
        if config.augment:
            kind, options = parse_augment_kind(config.augment)
            if kind == "image":
                self.augment = image_augmenter(**options, seed=config.seed)

    # --- the chain ------------------------------------------------------------------

    def execute(self, t_start: float, command: list[str], ladder: bool) -> RunRecord | None:
        s = self.dataset.summary()
        outputs = self.preprocessing.num_classes
        what = (f"{outputs} target{'s' if outputs != 1 else ''}"
                if self.task.firmware_output == "values" else f"{outputs} classes")
        log.info("data: %s train %d / val %d / test %d, input %s, %s; batch %d; task %s",
                 s.name, s.train, s.val, s.test, tuple(self.preprocessing.input_shape), what,
                 self.batch, self.task.name)
        float_model = self._timed("train", self._train_float)
        prepared = self._timed("int8_prep", rewrite.prepare, float_model, self.x("val")[:32])
        for change in prepared.changes:
            log.info("int8 prep: %s", change)
        self._use_preprocessing(self.preprocessing.then(prepared.input_scale,
                                                        prepared.input_offset))
        if self._qat_if_needed():
            candidates, scores, arenas, qat_model = self._ptq_first(float_model, prepared)
        else:
            qat_model = (self._timed("qat", self._train_qat, prepared.model)
                         if self.config.qat_epochs else None)
        if not self.dist.is_chief:
            import shutil

            log.info("%s %d: training done (scratch folder %s); the chief converts and "
                     "evaluates", self.dist.task_type, self.dist.task_index, self.run.path)
            shutil.rmtree(self.run.path, ignore_errors=True)
            return None
        if not self._qat_if_needed():
            candidates = self._timed("convert", self._convert, prepared.model, qat_model)
            scores, arenas = self._timed("evaluate", self._evaluate, float_model, qat_model,
                                         candidates)
        selected, selection = self._select(scores, candidates)
        write_bytes(self.run.selected_model, candidates[selected])
        threshold = self._timed("threshold", self._threshold, candidates[selected])
        self._timed("plots", self._plot_curves)
        self.timings["total"] = time.monotonic() - t_start
        record = self._record(float_model, prepared, candidates, scores, arenas, selected,
                              selection, threshold)
        record = self._diagnosed(record)
        self.run.write_record(record)
        self.run.write_manifest(command=command, data_fingerprint=self.dataset.fingerprint())
        self.run.remove_checkpoints()
        if ladder:  # verify stores the ladder in the record and renders the reports

            result = verify(self.run.path, ladder=True, workers=self.config.workers)
            record = dataclasses.replace(record, parity=result.record_parity,
                                         per_layer_error=result.per_layer_error)
            before = record.diagnosis
            record = self._diagnosed(record)  # with the per-layer error now
            self.run.write_record(record)
            self.reports = (result.reports if record.diagnosis == before
                            else list(render_reports(self.run.path)))
        else:
            self.reports = list(render_reports(self.run.path))
        for path in self.reports:
            log.info("wrote %s", path)
        return record

    def _train_float(self):
        path = self.run.float_model
        if "float" not in self.stages:
            pre = self.dataset.preprocessing
            c = self.config
            with self.dist.scope():
                model = build(parse_model(c.model), pre.input_shape, pre.num_classes,
                              self.task.name, reinit=c.reinit, freeze=c.freeze,
                              trust=c.trust_model, hyper=c.model_options)
                self._compile(model, 1e-3 if self.lr == "auto" else self.lr)
            check_convertible(model)  # before training (and the range test), not after it
            if c.lr_auto and self.lr_range is None:
                with self.dist.scope():
                    self._find_lr(model)
                    self._compile(model, self.lr)
            log.info("model: %s, %s parameters; training %d epochs", parse_model(c.model).name,
                     f"{model.count_params():,}", c.epochs)
            self._fit("float", model, path, save_keras_model, self.config.epochs,
                      self.config.seed, LrSchedule(self.config.schedule, self.lr),
                      self.float_callbacks)
        return load_keras_model(path, trust=self.config.trust_model)

    def _qat_if_needed(self) -> bool:
        """Whether QAT waits for PTQ's verdict (``config.qat_if_needed``): in one process
        only, for tasks scored by accuracy."""
        return (self.config.qat_if_needed and bool(self.config.qat_epochs)
                and self.dist.strategy is None and self.task.metric == "accuracy")

    def _ptq_first(self, float_model, prepared):
        """PTQ converted and checked in TFLM first; QAT trains only when PTQ loses more
        validation accuracy than one standard error of the validation estimate."""
        candidates = self._timed("convert", self._convert, prepared.model, None)
        scores, arenas = self._timed("evaluate", self._evaluate, float_model, None, candidates)
        x_val, y_val = self.dataset.inputs("val")[0], self.y("val")
        float_val = self.task.score(x_val, y_val, float_model.predict(
            x_val, batch_size=512, verbose=0), self.dataset.preprocessing.num_classes)
        needed, self.qat_decision = qat_needed(float_val["accuracy"],
                                               scores[PTQ_INT8]["val_accuracy"], len(y_val))
        log.info("%s", self.qat_decision)
        if not needed:
            return candidates, scores, arenas, None
        qat_model = self._timed("qat", self._train_qat, prepared.model)
        qat = self._timed("convert", self._convert, None, qat_model)
        more, more_arenas = self._timed("evaluate", self._evaluate, None, qat_model, qat)
        return ({**candidates, **qat}, {**scores, **more}, {**arenas, **more_arenas},
                qat_model)

    def _train_qat(self, prepared_model):
        weights = self.run.qat_weights
        for layer in prepared_model.layers:  # QAT fine-tunes the whole model
            layer.trainable = True
        with self.dist.scope():
            wrapped = quantize(prepared_model)
        self.float_layers = wrapped.float_layers
        for layer, reason in wrapped.float_layers:
            log.info("QAT: layer '%s' stays float (%s)", layer, reason)
        model = wrapped.model
        if "qat" not in self.stages:
            lr = self.config.qat_lr or self.lr / 10
            with self.dist.scope():
                self._compile(model, lr)
            log.info("QAT: fine-tuning %d epochs at lr %g", self.config.qat_epochs, lr)
            self._fit("qat", model, weights, save_weights, self.config.qat_epochs,
                      self.config.seed + 1)
        if self.dist.strategy is not None:
            # a model bound to the strategy would evaluate through it; the chief goes on alone
            return load_qat(self.run.float_model, weights)
        model.load_weights(weights)
        return model

    def _fit(self, phase: str, model, best_path: Path, save_best, epochs: int, seed: int,
             schedule: LrSchedule | None = None, callbacks: list | None = None):
        """One training phase (float or QAT), resumable, recorded in stages.json."""
        result = fit(model, self._fit_data("train"), self._fit_data("val"),
                     phase_dir=self.run.checkpoints(phase), history_csv=self.run.history(phase),
                     best_path=best_path, save_best=save_best, epochs=epochs,
                     batch_size=self.batch, patience=self.config.patience, seed=seed,
                     monitor=self.task.monitor, mode=self.task.monitor_mode,
                     augment=self.augment, tensorboard_dir=self.run.tensorboard(phase),
                     class_weight=self._class_weight(), schedule=schedule,
                     callbacks=callbacks)
        self.stages[phase] = result.to_dict()
        self.run.save_stages(self.stages)

    def _convert(self, prepared_model, qat_model) -> dict[str, bytes]:
        calibration = representative_samples(self.x("train"), self.config.calibration_samples,
                                             self.config.seed)
        models = {k: m for k, m in ((PTQ_INT8, prepared_model), (QAT_INT8, qat_model))
                  if m is not None}
        # a model tflmp did not build converts in a child process: a converter crash
        # on it ends that process only
        candidates = {}
        with Progress(len(models), "converting to int8 TFLite", summary_after=2.0) as progress:
            if parse_model(self.config.model).kind != "zoo":
                jobs = [ConversionJob(self.run.float_model, prepare=key == PTQ_INT8,
                                      qat_weights=self.run.qat_weights if key == QAT_INT8
                                      else None, trust=self.config.trust_model)
                        for key in models]
                candidates = dict(zip(models, convert_contained(jobs, calibration)))
            else:
                for key, model in models.items():
                    candidates[key] = to_int8_tflite(model, calibration)
                    progress.update(len(candidates))
            if self.config.offline_plan:
                candidates = {k: self._offline_plan(k, v) for k, v in candidates.items()}
            for key, flatbuffer in candidates.items():
                write_bytes(self.run.candidate(key), flatbuffer)
            progress.update(len(candidates))
        log.info("converted to int8: %s", ", ".join(f"{k.split('_')[0].upper()} {len(v):,} bytes"
                                                    for k, v in candidates.items()))
        return candidates

    @staticmethod
    def _offline_plan(key: str, flatbuffer: bytes) -> bytes:
        planned, outcome = plan_model(flatbuffer)
        log.info("%s offline memory plan: %s", key.split("_")[0].upper(), outcome.reason)
        return planned

    def _evaluate(self, float_model, qat_model, candidates):
        task, classes = self.task, self.dataset.preprocessing.num_classes
        x_test, y_test = self.x("test"), self.y("test")
        float_x = self.dataset.inputs("test")[0]  # the float model keeps its own preprocessing
        scores = {} if float_model is None else {FLOAT: task.score(
            x_test, y_test, float_model.predict(float_x, batch_size=512, verbose=0), classes)}
        if qat_model is not None:
            scores[QAT_KERAS] = task.score(x_test, y_test, qat_model.predict(
                x_test, batch_size=512, verbose=0), classes)
        arenas = {}
        for key, flatbuffer in candidates.items():
            e = evaluate(flatbuffer, task, {"val": (self.x("val"), self.y("val")),
                                            "test": (x_test, y_test)}, classes,
                         workers=self.config.workers,
                         label=f"TFLM {key.split('_')[0].upper()} int8")
            arenas[key] = e.arena
            scores[key] = {**e["test"], f"val_{task.metric}": e["val"][task.metric]}
        return scores, arenas

    def _select(self, scores: dict, candidates: dict) -> tuple[str, str]:
        """The candidate with the better validation metric in TFLM (never the test set);
        a tie goes to QAT."""
        key = f"val_{self.task.metric}"
        selected = max(candidates, key=lambda k: (self.task.rank(scores[k][key]), k == QAT_INT8))
        better = "higher" if self.task.higher_is_better else "lower"
        why = (f"{selected} has the {better} validation {self.task.metric} in TFLM: "
               + ", ".join(f"{k} {scores[k][key]:.4f}" for k in candidates)
               + " (ties go to QAT)")
        return selected, why

    def _threshold(self, model: bytes) -> dict | None:
        """An anomaly detector's threshold (``--threshold``, or chosen on the validation
        split from the scores the device computes) and its verdicts on the test split."""
        if self.task.firmware_output != "anomaly_score":
            return None
        workers = self.config.workers
        if self.config.threshold is None:
            chosen = anomaly_threshold(model, self.x("val"), self.y("val"), workers=workers)
        else:
            val = anomaly_scores(model, self.x("val"), workers=workers)
            chosen = Threshold(self.config.threshold, "given with --threshold",
                               verdict_metrics(val, self.y("val"), self.config.threshold))
        test = verdict_metrics(anomaly_scores(model, self.x("test"), workers=workers),
                               self.y("test"), chosen.value)
        log.info("anomaly threshold %.6g (%s): test precision %s, recall %s", chosen.value,
                 chosen.method, test["precision"], test["recall"])
        return {**chosen.to_dict(), "test": test}

    def _record(self, float_model, prepared, candidates, scores, arenas, selected,
                selection, threshold) -> RunRecord:
        info = read_model(candidates[selected])
        profile = device_profile(info, arenas[selected].bytes)
        io = info.to_dict()
        model = ModelFacts(
            name=parse_model(self.config.model).name, params=int(float_model.count_params()),
            tflite_bytes=info.size, sha256=info.sha256, arena_bytes=arenas[selected].bytes,
            arena_basis=arenas[selected].basis, arena_32bit=estimate(info).to_dict(),
            ops=info.op_names, input=io["inputs"][0], output=io["outputs"][0],
            candidates={k: {"tflite_bytes": len(v), **arenas[k].to_dict()}
                        for k, v in candidates.items()})
        phases = {p: self.stages[p] for p in ("float", "qat") if p in self.stages}
        return RunRecord(
            run_dir=str(self.run.path), task=self.task.name, dataset=self.dataset.summary(),
            scores=scores, selected=selected, selection=selection,
            ledger=Ledger.of(self.task, scores),
            int8_preparation=Int8Preparation(list(prepared.changes), list(self.float_layers)),
            model=model,
            training=TrainingFacts(self.batch, self.config.optimizer, self.lr, phases,
                                   self.config.schedule, self.config.recipe, self.qat_decision),
            lr_range=self.lr_range.summary() if self.lr_range is not None else None,
            timings_s={k: round(v, 2) for k, v in self.timings.items()},
            profile=profile.record_profile(), board_fit=[b.to_dict() for b in profile.boards],
            threshold=threshold, data_checks=self.data_checks.to_dict())

    # --- --lr auto and the diagnosis -----------------------------------------------------

    def _saved_lr_range(self) -> LrRange | None:
        data = read_json(self.run.file(RunFolder.LR_RANGE), "delete it to sweep again")
        return LrRange.from_dict(data) if data is not None else None

    def _find_lr(self, model) -> None:
        """Run the range test on the fresh ``model``, then put its initial weights back;
        the sweep and the choice are saved before training starts."""
        initial = model.get_weights()
        self._compile(model, 1e-6)
        x, y = self._fit_data("train")
        sweep = lr_range_test(model, x, y, self.batch, seed=self.config.seed)
        model.set_weights(initial)
        write_json(self.run.file(RunFolder.LR_RANGE), sweep.to_dict())
        plot_lr_range(sweep, self.run.file(RunFolder.LR_RANGE_PLOT))
        self.lr_range, self.lr = sweep, sweep.chosen

    def _diagnosed(self, record: RunRecord) -> RunRecord:
        """``record`` with what ``tflmp doctor`` finds in this run."""
        findings = diagnose(self.run, record)
        return dataclasses.replace(record, diagnosis=[f.to_dict() for f in findings])

    # --- helpers ------------------------------------------------------------------------

    def _plot_curves(self) -> None:
        plot_run_curves(self.run, self.task.curve_metric)

    def _use_preprocessing(self, pre) -> None:
        """From now on (int8 models) the inputs are prepared this way; saved for the
        harness and firmware."""
        self.preprocessing = pre
        self.run.save_preprocessing(pre)

    def x(self, split: str):
        return self.preprocessing.apply(self.dataset.raw(split)[0])

    def y(self, split: str):
        return self.dataset.raw(split)[1]

    def _fit_data(self, split: str):
        """(inputs, targets) for training on ``split``, as the task learns."""
        x, y = self.x(split), self.y(split)
        rows = self.task.training_rows(y)
        return x[rows], self.task.targets(x[rows], y[rows])

    def _class_weight(self) -> dict | None:
        """``--class-weight auto``: train-split weights inverse to the class counts."""
        if self.config.class_weight != "auto" or self.task.name != "classification":
            return None
        return class_weights(self.dataset.raw("train")[1],
                             self.dataset.preprocessing.num_classes)

    def _timed(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - t0

    def _compile(self, model, lr: float) -> None:
        model.compile(optimizer=make_optimizer(self.config.optimizer, lr), loss=self.task.loss,
                      metrics=list(self.task.keras_metrics))
