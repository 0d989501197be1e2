"""``tflmp train``: data -> float training -> QAT -> int8 (PTQ and QAT) -> TFLM evaluation
-> report, all in one run folder that ``--resume`` can pick up after an interruption."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from . import arena, convert, qat, quantizable, report, train, verify
from .codegen.settings import DEFAULT_ARENA_PROFILE
from .artifacts import write_bytes, write_json
from .data import Dataset
from .distribute import Distribution
from .errors import TflmpError
from .model_info import read_model
from .progress import Progress
from .runs import FLOAT_PREPROCESSING, SELECTED_MODEL, read_run_config
from .tasks import TASKS
from .tf_env import load
from .train import TrainConfig

def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.model}-{Path(config.dataset).stem}-{stamp}"


def run_training(config: TrainConfig | None = None, out: str | Path | None = None, *,
                 resume: str | Path | None = None, command: list[str] | None = None,
                 ladder: bool = False) -> dict:
    """Run (or resume) the whole chain; return the report written to ``report.json``.

    ``ladder`` adds the parity ladder and per-layer quantization error of the selected
    model (:func:`verify.run_ladder`) to the report.

    Raises TflmpError after writing everything when the selected int8 model loses more
    than ``config.max_drop`` points against float.  With ``config.strategy``
    "multi-worker", workers other than the chief train in a scratch folder and return
    None after QAT (:mod:`distribute`).
    """
    from .models import task_of

    t_start = time.monotonic()
    _, keras, _ = load()
    saved = read_run_config(Path(resume)) if resume is not None else None
    strategy = (saved or config or TrainConfig()).strategy
    if saved is not None and strategy == "multi-worker":
        raise TflmpError("--resume continues single-process runs; a multi-worker run restarts: "
                         "start all workers again with a new --out")
    # Created first: MultiWorkerMirroredStrategy must exist before any TensorFlow op runs.
    dist = Distribution(strategy)
    if not dist.is_chief:
        out = Path(tempfile.mkdtemp(prefix=f"tflmp-{dist.task_type}{dist.task_index}-"))
    run_dir, config = _prepare_run_dir(config, out, resume)
    config.validate()
    keras.utils.set_random_seed(config.seed)
    task = TASKS[task_of(config.model)]
    dataset = config.load_data()
    _check_same_data(run_dir, dataset)
    run = _Run(run_dir, config, task, dataset, _read_json(run_dir / "stages.json", {}), dist)
    s = dataset.summary()
    print(f"data: {s['name']} train {s['train']} / val {s['val']} / test {s['test']}, "
          f"input {tuple(dataset.preprocessing.input_shape)}, "
          f"{dataset.preprocessing.num_classes} classes; batch {run.batch}; task {task.name}")

    float_model = run.timed("train", _train_float, run)
    prepared = quantizable.prepare(float_model, run.x("val")[:32])
    for change in prepared.changes:
        print(f"int8 prep: {change}")
    run.use_preprocessing(dataset.preprocessing.then(prepared.input_scale,
                                                     prepared.input_offset))
    qat_model = run.timed("qat", _train_qat, run, prepared.model) if config.qat_epochs else None
    if not dist.is_chief:
        print(f"{dist.task_type} {dist.task_index}: training done (scratch folder {run_dir}); "
              "the chief converts and evaluates")
        shutil.rmtree(run_dir, ignore_errors=True)
        return None
    candidates = run.timed("convert", _convert, run, prepared.model, qat_model)
    results, arenas = run.timed("evaluate", _evaluate, run, float_model, qat_model, candidates)

    # Choose on validation data, never on the test set; a tie goes to QAT.
    metric = task.metric
    selected = max(candidates, key=lambda k: (results[k]["val_" + metric], k == "qat_int8_tflm"))
    write_bytes(run_dir / SELECTED_MODEL, candidates[selected])
    results["selected"] = selected
    results["selection"] = (f"{selected} has the higher validation {metric} in TFLM: "
                            + ", ".join(f"{k} {results[k]['val_' + metric]:.4f}"
                                        for k in candidates) + " (ties go to QAT)")
    ledger = _ledger(results, metric, candidates)
    info = read_model(candidates[selected])
    histories = {"float": train.read_history(run_dir / "history.csv"),
                 "QAT": train.read_history(run_dir / "history_qat.csv")}
    report.plot_training_curves(histories, run_dir / "plots" / "training_curves.png",
                                metric="accuracy" if task.name == "classification" else None)
    run.timings["total"] = time.monotonic() - t_start
    rep = {
        "run_dir": str(run_dir),
        "task": task.name,
        "dataset": dataset.summary(),
        "metrics": results,
        "ledger": ledger,
        "int8_preparation": {"rewrites": prepared.changes,
                             "float_during_qat": [{"layer": n, "reason": r}
                                                  for n, r in run.float_layers]},
        "model": {"name": config.model, "params": int(float_model.count_params()),
                  "tflite_bytes": info.size, "sha256": info.sha256, **arenas[selected].to_dict(),
                  "arena_32bit": arena.estimate(info, DEFAULT_ARENA_PROFILE).to_dict(),
                  "ops": info.op_names, "input": info.to_dict()["inputs"][0],
                  "output": info.to_dict()["outputs"][0],
                  "candidates": {k: {"tflite_bytes": len(v), **arenas[k].to_dict()}
                                 for k, v in candidates.items()}},
        "training": {"batch_size": run.batch, "optimizer": config.optimizer, "lr": config.lr,
                     **{phase: run.stages[phase] for phase in ("float", "qat")
                        if phase in run.stages}},
        "timings_s": {k: round(v, 2) for k, v in run.timings.items()},
    }
    rep.update(_profile(candidates[selected], arenas[selected].bytes))
    report.write_report(run_dir, rep)
    report.write_manifest(run_dir, config=config.to_dict(), data_fingerprint=dataset.fingerprint(),
                          command=command or sys.argv, seed=config.seed)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if ladder:
        rep.update(verify.run_ladder(run_dir, workers=config.workers))
    for path in report.render_reports(run_dir):
        print(f"wrote {path}")
    drop = ledger[selected]["drop_pp"]
    if drop > config.max_drop:
        raise TflmpError(
            f"the selected int8 model ({selected}) scores {ledger[selected][metric]:.4f} "
            f"{metric} in TFLM, {drop:.2f} points below float ({ledger['float'][metric]:.4f}), "
            f"more than --max-drop {config.max_drop:g}; the run is kept in {run_dir}: try more "
            "--qat-epochs or a lower --qat-lr")
    return rep


def _profile(model: bytes, host_arena_bytes: int) -> dict:
    """report.json's profile (memory plan, flash) and the fit and latency on every board."""
    from .profile import model_profile

    p = model_profile(model, host_arena_bytes=host_arena_bytes)
    return {"profile": {"totals": p["totals"], "memory": p["memory"], "flash": p["flash"]},
            "board_fit": p["boards"]}


class _Run:
    """One training run's folder, settings, data and bookkeeping, shared by its stages."""

    def __init__(self, run_dir: Path, config: TrainConfig, task, dataset: Dataset,
                 stages: dict, dist: Distribution):
        self.dir, self.config, self.task, self.dataset = run_dir, config, task, dataset
        self.dist = dist
        self.stages = stages
        self.timings: dict[str, float] = {}
        self.float_layers: list = []
        self.preprocessing = dataset.preprocessing
        self.preprocessing.save(run_dir / "preprocessing.json")
        # the float Keras model keeps its own inputs if int8 preparation moves a layer out
        self.preprocessing.save(run_dir / FLOAT_PREPROCESSING)
        self.batch = config.batch_size or train.auto_batch_size(len(dataset.y_train))
        self.augment = config.image_augmenter()

    def use_preprocessing(self, pre) -> None:
        """From now on (int8 models) the inputs are prepared this way; saved for the
        harness and firmware."""
        self.preprocessing = pre
        pre.save(self.dir / "preprocessing.json")

    def x(self, split: str):
        return self.preprocessing.apply(getattr(self.dataset, f"x_{split}"))

    def y(self, split: str):
        return getattr(self.dataset, f"y_{split}").astype("int64")

    def fit_data(self, split: str):
        """(inputs, targets) for training on ``split``, as the task learns."""
        x, y = self.x(split), self.y(split)
        rows = self.task.training_rows(y)
        return x[rows], self.task.targets(x[rows], y[rows])

    def timed(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.timings[name] = time.monotonic() - t0

    def save_stage(self, name: str, result) -> None:
        self.stages[name] = vars(result)
        write_json(self.dir / "stages.json", self.stages)


def _train_float(run: _Run):
    from .models import build_model

    path = run.dir / "float_best.h5"
    if "float" not in run.stages:
        pre = run.dataset.preprocessing
        with run.dist.scope():
            model = build_model(run.config.model, pre.input_shape, pre.num_classes)
            _compile(model, run.task, run.config.optimizer, run.config.lr)
        print(f"model: {run.config.model}, {model.count_params():,} parameters; "
              f"training {run.config.epochs} epochs")
        result = train.fit(model, run.fit_data("train"), run.fit_data("val"),
                           phase_dir=run.dir / "checkpoints" / "float",
                           history_csv=run.dir / "history.csv", best_path=path,
                           save_best=train.save_keras_model, epochs=run.config.epochs,
                           batch_size=run.batch, patience=run.config.patience,
                           seed=run.config.seed, monitor=run.task.monitor,
                           mode=run.task.monitor_mode,
                           augment=run.augment,
                           tensorboard_dir=run.dir / "tensorboard" / "float")
        run.save_stage("float", result)
    return qat.load_float(path)


def _train_qat(run: _Run, prepared_model):
    weights = run.dir / "qat_best_weights.h5"
    with run.dist.scope():
        wrapped = qat.quantize(prepared_model)
    run.float_layers = wrapped.float_layers
    for layer, reason in wrapped.float_layers:
        print(f"QAT: layer '{layer}' stays float ({reason})")
    model = wrapped.model
    if "qat" not in run.stages:
        qat_lr = run.config.qat_lr or run.config.lr / 10
        with run.dist.scope():
            _compile(model, run.task, run.config.optimizer, qat_lr)
        print(f"QAT: fine-tuning {run.config.qat_epochs} epochs at lr {qat_lr:g}")
        result = train.fit(model, run.fit_data("train"), run.fit_data("val"),
                           phase_dir=run.dir / "checkpoints" / "qat",
                           history_csv=run.dir / "history_qat.csv", best_path=weights,
                           save_best=train.save_weights, epochs=run.config.qat_epochs,
                           batch_size=run.batch, patience=run.config.patience,
                           seed=run.config.seed + 1, monitor=run.task.monitor,
                           mode=run.task.monitor_mode,
                           augment=run.augment,
                           tensorboard_dir=run.dir / "tensorboard" / "qat")
        run.save_stage("qat", result)
    if run.dist.strategy is not None:
        # a model bound to the strategy would evaluate through it; the chief goes on alone
        return qat.load_qat(run.dir / "float_best.h5", weights)
    model.load_weights(weights)
    return model


def _convert(run: _Run, prepared_model, qat_model) -> dict[str, bytes]:
    calibration = convert.representative_samples(run.x("train"), run.config.calibration_samples,
                                                 run.config.seed)
    models = {("ptq_int8_tflm", "model_ptq_int8.tflite"): prepared_model,
              ("qat_int8_tflm", "model_qat_int8.tflite"): qat_model}
    models = {k: m for k, m in models.items() if m is not None}
    candidates = {}
    with Progress(len(models), "converting to int8 TFLite", summary_after=2.0) as progress:
        for (key, file_name), model in models.items():
            candidates[key] = convert.to_int8_tflite(model, calibration)
            write_bytes(run.dir / file_name, candidates[key])
            progress.update(len(candidates))
    print("converted to int8: " + ", ".join(f"{k.split('_')[0].upper()} {len(v):,} bytes"
                                            for k, v in candidates.items()))
    return candidates


def _evaluate(run: _Run, float_model, qat_model, candidates):
    task, classes = run.task, run.dataset.preprocessing.num_classes
    x_test, y_test = run.x("test"), run.y("test")
    float_x = run.dataset.inputs("test")[0]  # the float model keeps its own preprocessing
    results = {"float": task.score(x_test, y_test, float_model.predict(float_x, batch_size=512,
                                                                       verbose=0), classes)}
    if qat_model is not None:
        results["qat_keras"] = task.score(x_test, y_test, qat_model.predict(
            x_test, batch_size=512, verbose=0), classes)
    arenas = {}
    for key, flatbuffer in candidates.items():
        r = verify.evaluate(flatbuffer, task, {"val": (run.x("val"), run.y("val")),
                                               "test": (x_test, y_test)}, classes,
                            workers=run.config.workers,
                            label=f"TFLM {key.split('_')[0].upper()} int8")
        arenas[key] = r["arena"]
        results[key] = {**r["test"], f"val_{task.metric}": r["val"][task.metric]}
    return results, arenas


def _ledger(results: dict, metric: str, candidates) -> dict:
    """Float and each int8 model in TFLM on the test set, and the drop in points."""
    base = results["float"][metric]
    ledger = {"metric": metric, "float": {metric: base}}
    for key in ("qat_keras", *candidates):
        if key in results:
            value = results[key][metric]
            ledger[key] = {metric: value, "drop_pp": round((base - value) * 100, 2)}
    return ledger


def _prepare_run_dir(config, out, resume) -> tuple[Path, TrainConfig]:
    if resume is not None:
        run_dir = Path(resume)
        saved = read_run_config(run_dir)
        if saved is None:
            raise TflmpError(f"{run_dir} is not a tflmp run folder (no config.json); "
                             "pass the --out folder of an earlier 'tflmp train'")
        return run_dir, saved
    config = config or TrainConfig()
    config.validate()
    run_dir = Path(out) if out is not None else default_run_dir(config)
    if (run_dir / "config.json").exists():
        raise TflmpError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                         "or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise TflmpError(f"--out {run_dir} is a file; choose a folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", config.to_dict())
    return run_dir, config


def _check_same_data(run_dir: Path, dataset: Dataset) -> None:
    """A resumed run must see the data it started with."""
    path = run_dir / "data_sha256.json"
    fingerprint = dataset.fingerprint()
    saved = _read_json(path, None)
    if saved is None:
        write_json(path, fingerprint)
    elif saved != fingerprint:
        raise TflmpError(f"the dataset differs from the one {run_dir} started with; "
                         "resume with the same data or start a new run")


def _read_json(path: Path, default):
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise TflmpError(f"{path} is corrupt ({e}); start a new run") from None


def _compile(model, task, optimizer: str, lr: float) -> None:
    model.compile(optimizer=train.make_optimizer(optimizer, lr), loss=task.loss,
                  metrics=list(task.keras_metrics))
