"""``tflmp train``: data -> float training -> QAT -> int8 (PTQ and QAT) -> TFLM evaluation
-> run record and reports, all in one run folder that ``--resume`` picks up after an
interruption."""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..artifacts import read_json, write_bytes, write_json
from ..config import RunConfig
from ..data import DataSpec, load_dataset, task_hint
from ..data.checks import check_dataset
from ..data.folds import small_test_split
from ..data.spec import with_absolute_paths
from ..errors import TflmpError
from ..mcu.arena import estimate
from ..mcu.arena_plan import plan_model
from ..mcu.device_profile import device_profile
from ..models import task_for
from ..quantize.recipe import Recipe, qat_needed, select_int8
from ..record import FLOAT, PTQ_INT8, Int8Preparation, Ledger, ModelFacts, RunRecord, TrainingFacts
from ..reports.diagnose import diagnose
from ..reports.plots import plot_lr_range, plot_run_curves
from ..reports.results import (anomaly_arrays, is_binary, per_class_record, positive_threshold,
                               prediction_arrays)
from ..reports.run_report import render_reports
from ..runs import RunFolder
from ..tasks import Task, Threshold, get_task, verdict_metrics
from ..tf_env import load
from ..tflite.model_info import read_model
from ..tflm.harness import anomaly_scores
from ..training.distribute import Distribution
from ..training.fit import auto_batch_size
from ..training.lr_range import LrRange, lr_range_test
from ..training.model_source import ModelSpec, declared_task, parse_model
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
        small = small_test_split(self.dataset, self.task.name)
        if small and not config.cv:
            log.warning("%s", small)
        self.timings: dict[str, float] = {"data": time.monotonic() - t_data}
        self.outputs: dict[str, dict] = {}  # model key -> split -> outputs (test_predictions.npz)
        self._check_threshold()
        self.reports: list[Path] = []
        self.preprocessing = self.dataset.preprocessing
        # the float Keras model keeps its own inputs if int8 preparation moves a layer out
        run.save_preprocessing(self.preprocessing, float_model=True)
        self.batch = config.batch_size or auto_batch_size(len(self.dataset.y_train))
        # --lr auto: the rate the range test chose (read back on --resume, never redone)
        self.lr_range = self._saved_lr_range() if config.lr_auto else None
        # the steps a cross-validation fold follows too, on the run's train and val splits
        self.recipe = Recipe(
            run, config, self.task, self.preprocessing,
            {"train": self.dataset.raw("train"), "val": self.dataset.raw("val")},
            batch=self.batch, lr=self.lr_range.chosen if self.lr_range is not None
            else config.lr, dist=dist, callbacks=callbacks)
        self.stages = self.recipe.stages  # one dict: the recipe records its phases in it
        weights = self.recipe.class_weight
        if weights:
            log.info("class weights (--class-weight auto): %s",
                     ", ".join(f"{k} {v:.3g}" for k, v in weights.items()))

    @property
    def lr(self):
        """The learning rate of float training (--lr, or what --lr auto chose)."""
        return self.recipe.lr

    # --- the chain ------------------------------------------------------------------

    def execute(self, t_start: float, command: list[str], ladder: bool) -> RunRecord | None:
        s = self.dataset.summary()
        outputs = self.preprocessing.num_classes
        what = (f"{outputs} target{'s' if outputs != 1 else ''}"
                if self.task.firmware_output == "values" else f"{outputs} classes")
        log.info("data: %s train %d / val %d / test %d, input %s, %s; batch %d; task %s",
                 s.name, s.train, s.val, s.test, tuple(self.preprocessing.input_shape), what,
                 self.batch, self.task.name)
        cross_validation = (self._timed("cv", self._cross_validate) if self.config.cv
                            else None)
        float_model = self._timed("train", self._train_float)
        prepared = self._timed("int8_prep", self.recipe.prepare, float_model)
        self._use_preprocessing(self.recipe.preprocessing)
        if self._qat_if_needed():
            candidates, scores, arenas, qat_model = self._ptq_first(float_model, prepared)
        else:
            qat_model = (self._timed("qat", self.recipe.train_qat, prepared.model)
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
        if threshold is None and self._binary():
            threshold = self._positive_threshold(selected)
        per_class, gallery = self._results(selected, threshold)
        self._timed("plots", self._plot_curves)
        self.timings["total"] = time.monotonic() - t_start
        record = self._record(float_model, prepared, candidates, scores, arenas, selected,
                              selection, threshold)
        record = dataclasses.replace(record, per_class=per_class, error_gallery=gallery)
        if cross_validation is not None:
            record = dataclasses.replace(record, cross_validation=cross_validation.to_dict())
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
        find_lr = self._find_lr if self.config.lr_auto and self.lr_range is None else None
        return self.recipe.train_float(find_lr)

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
        qat_model = self._timed("qat", self.recipe.train_qat, prepared.model)
        qat = self._timed("convert", self._convert, None, qat_model)
        more, more_arenas = self._timed("evaluate", self._evaluate, None, qat_model, qat)
        return ({**candidates, **qat}, {**scores, **more}, {**arenas, **more_arenas},
                qat_model)

    def _convert(self, prepared_model, qat_model) -> dict[str, bytes]:
        candidates = self.recipe.convert(prepared_model, qat_model)
        if self.config.offline_plan:
            candidates = {k: self._offline_plan(k, v) for k, v in candidates.items()}
        for key, flatbuffer in candidates.items():
            write_bytes(self.run.candidate(key), flatbuffer)
        log.info("converted to int8: %s", ", ".join(f"{k.split('_')[0].upper()} {len(v):,} bytes"
                                                    for k, v in candidates.items()))
        return candidates

    @staticmethod
    def _offline_plan(key: str, flatbuffer: bytes) -> bytes:
        planned, outcome = plan_model(flatbuffer)
        log.info("%s offline memory plan: %s", key.split("_")[0].upper(), outcome.reason)
        return planned

    def _evaluate(self, float_model, qat_model, candidates):
        scored = self.recipe.evaluate(
            float_model, qat_model, candidates, self.dataset.raw("test"), "test",
            workers=self.config.workers,
            label=lambda key: f"TFLM {key.split('_')[0].upper()} int8")
        self.outputs.update(scored.outputs)
        return scored.scores, scored.arenas

    def _select(self, scores: dict, candidates: dict) -> tuple[str, str]:
        return select_int8(self.task, scores, candidates)

    def _threshold(self, model: bytes) -> dict | None:
        """An anomaly detector's threshold (``--threshold``, or chosen on the validation
        split from the scores the device computes) and its verdicts on the test split."""
        if self.task.firmware_output != "anomaly_score":
            return None
        workers = self.config.workers
        val = anomaly_scores(model, self.x("val"), workers=workers)
        if self.config.threshold is None:
            chosen = self.task.choose_threshold(val, self.y("val"))
        else:
            chosen = Threshold(self.config.threshold, "given with --threshold",
                               verdict_metrics(val, self.y("val"), self.config.threshold))
        test_scores = anomaly_scores(model, self.x("test"), workers=workers)
        test = verdict_metrics(test_scores, self.y("test"), chosen.value)
        self.run.save_predictions(anomaly_arrays(self.y("val"), val, self.y("test"), test_scores))
        log.info("anomaly threshold %.6g (%s): test precision %s, recall %s", chosen.value,
                 chosen.method, test["precision"], test["recall"])
        return {**chosen.to_dict(), "test": test}

    def _binary(self) -> bool:
        return is_binary(self.task.name, self.dataset.preprocessing.num_classes)

    def _check_threshold(self) -> None:
        """``--threshold VALUE`` fits the task (checked before training, not after)."""
        given = self.config.threshold
        if given is None or self.task.firmware_output == "anomaly_score":
            return
        if not self._binary():
            raise TflmpError("--threshold is the operating point of an anomaly detector or a "
                             f"binary classifier; this {self.task.name} run has "
                             f"{self.dataset.preprocessing.num_classes} outputs: drop it")
        if not 0.0 <= given <= 1.0:
            raise TflmpError(f"--threshold {given:g} is outside 0..1, the range of a binary "
                             "classifier's class-1 score; give a share or 'auto'")

    def _positive_threshold(self, selected: str) -> dict:
        """A binary classifier's threshold on the selected int8 model's class-1 score
        (``--threshold``, or best F1 on the validation split) and its test verdicts."""
        out = self.outputs[selected]
        chosen = positive_threshold(out["val"][:, 1], self.y("val"), out["test"][:, 1],
                                    self.y("test"), self.config.threshold)
        log.info("binary threshold %.6g (%s): test precision %s, recall %s", chosen["value"],
                 chosen["method"], chosen["test"]["precision"], chosen["test"]["recall"])
        return chosen

    def _results(self, selected: str, threshold: dict | None) -> tuple[dict | None, dict | None]:
        """A classifier's per-class metrics (float and the selected int8 model) and its
        error galleries, deciding as the firmware does (a binary classifier at its
        threshold); the per-sample outputs go to test_predictions.npz."""
        if self.task.firmware_output != "class":
            return None, None
        cut = threshold["value"] if threshold is not None else None
        pre = self.dataset.preprocessing
        float_test, int8 = self.outputs[FLOAT]["test"], self.outputs[selected]
        y_test = self.y("test")
        per_class = per_class_record(y_test, {FLOAT: float_test, selected: int8["test"]},
                                     pre.num_classes, pre.labels, cut)
        arrays, gallery = prediction_arrays(
            selected=selected, y_test=y_test, float_test=float_test, int8_test=int8["test"],
            y_val=self.y("val"), int8_val=int8["val"], raw_test=self.dataset.raw("test")[0],
            input_shape=pre.input_shape, features=pre.features, threshold=cut)
        self.run.save_predictions(arrays)
        return per_class, gallery

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
            int8_preparation=Int8Preparation(list(prepared.changes), list(self.recipe.float_layers)),
            model=model,
            training=TrainingFacts(self.batch, self.config.optimizer, self.lr, phases,
                                   self.config.schedule, self.config.recipe, self.qat_decision),
            lr_range=self.lr_range.summary() if self.lr_range is not None else None,
            timings_s={k: round(v, 2) for k, v in self.timings.items()},
            profile=profile.record_profile(), board_fit=[b.to_dict() for b in profile.boards],
            threshold=threshold, data_checks=self.data_checks.to_dict())

    def _cross_validate(self):
        """--cv K: the folds over train+val (resumed fold by fold), before the final model."""
        from ..cv.stage import cross_validate

        return cross_validate(self.run, self.config, self.dataset, self.task,
                              batch=self.batch, lr=self.lr)

    # --- --lr auto and the diagnosis -----------------------------------------------------

    def _saved_lr_range(self) -> LrRange | None:
        data = read_json(self.run.file(RunFolder.LR_RANGE), "delete it to sweep again")
        return LrRange.from_dict(data) if data is not None else None

    def _find_lr(self, model) -> None:
        """Run the range test on the fresh ``model``, then put its initial weights back;
        the sweep and the choice are saved before training starts."""
        initial = model.get_weights()
        self.recipe.compile(model, 1e-6)
        x, y = self.recipe.fit_data("train")
        sweep = lr_range_test(model, x, y, self.batch, seed=self.config.seed)
        model.set_weights(initial)
        write_json(self.run.file(RunFolder.LR_RANGE), sweep.to_dict())
        plot_lr_range(sweep, self.run.file(RunFolder.LR_RANGE_PLOT))
        self.lr_range, self.recipe.lr = sweep, sweep.chosen

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

    def _timed(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:  # a step that runs twice (convert, evaluate after PTQ-first QAT) adds up
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - t0
