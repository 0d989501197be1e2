"""``tflmp train``: data -> float training -> QAT -> int8 (PTQ and QAT) -> TFLM evaluation
-> report, all in one run folder that ``--resume`` can pick up after an interruption."""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from . import arena, convert, metrics, qat, report, train, verify
from .codegen.settings import DEFAULT_ARENA_PROFILE
from .artifacts import write_bytes, write_json
from .data import Dataset, load_dataset
from .errors import TflmpError
from .model_info import read_model
from .runs import SELECTED_MODEL, read_run_config
from .tf_env import load
from .train import TrainConfig

def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.model}-{Path(config.dataset).stem}-{stamp}"


def run_training(config: TrainConfig | None = None, out: str | Path | None = None, *,
                 resume: str | Path | None = None, command: list[str] | None = None) -> dict:
    """Run (or resume) the whole chain; return the report written to ``report.json``."""
    t_start = time.monotonic()
    run_dir, config = _prepare_run_dir(config, out, resume)
    config.validate()
    tf, keras, _ = load()
    keras.utils.set_random_seed(config.seed)
    timings: dict[str, float] = {}

    dataset = load_dataset(config.dataset, config.data_dir, seed=config.seed,
                           split=config.split, val_fraction=config.val_split)
    _check_same_data(run_dir, dataset)
    pre = dataset.preprocessing
    pre.save(run_dir / "preprocessing.json")
    x_train, y_train = dataset.inputs("train")
    x_val, y_val = dataset.inputs("val")
    x_test, y_test = dataset.inputs("test")
    batch = config.batch_size or train.auto_batch_size(len(x_train))
    s = dataset.summary()
    print(f"data: {s['name']} train {s['train']} / val {s['val']} / test {s['test']}, "
          f"input {tuple(pre.input_shape)}, {pre.num_classes} classes; batch {batch}")

    stages = _read_json(run_dir / "stages.json", {})
    float_path = run_dir / "float_best.h5"
    t0 = time.monotonic()
    if "float" not in stages:
        from .models import build_model

        model = build_model(config.model, pre.input_shape, pre.num_classes)
        _compile(model, config.optimizer, config.lr)
        print(f"model: {config.model}, {model.count_params():,} parameters; "
              f"training {config.epochs} epochs")
        result = train.fit(model, (x_train, y_train), (x_val, y_val),
                           phase_dir=run_dir / "checkpoints" / "float",
                           history_csv=run_dir / "history.csv", best_path=float_path,
                           save_best=train.save_keras_model, epochs=config.epochs,
                           batch_size=batch, patience=config.patience, seed=config.seed,
                           tensorboard_dir=run_dir / "tensorboard" / "float")
        stages["float"] = vars(result)
        write_json(run_dir / "stages.json", stages)
    timings["train"] = time.monotonic() - t0
    float_model = qat.load_float(float_path)

    qat_model = None
    qat_weights = run_dir / "qat_best_weights.h5"
    t0 = time.monotonic()
    if config.qat_epochs > 0:
        qat_model = qat.quantize(float_model)
        qat_lr = config.qat_lr or config.lr / 10
        if "qat" not in stages:
            _compile(qat_model, config.optimizer, qat_lr)
            print(f"QAT: fine-tuning {config.qat_epochs} epochs at lr {qat_lr:g}")
            result = train.fit(qat_model, (x_train, y_train), (x_val, y_val),
                               phase_dir=run_dir / "checkpoints" / "qat",
                               history_csv=run_dir / "history_qat.csv", best_path=qat_weights,
                               save_best=train.save_weights, epochs=config.qat_epochs,
                               batch_size=batch, patience=config.patience,
                               seed=config.seed + 1,
                               tensorboard_dir=run_dir / "tensorboard" / "qat")
            stages["qat"] = vars(result)
            write_json(run_dir / "stages.json", stages)
        qat_model.load_weights(qat_weights)
    timings["qat"] = time.monotonic() - t0

    t0 = time.monotonic()
    calibration = convert.representative_samples(x_train, config.calibration_samples,
                                                 config.seed)
    candidates = {"ptq_int8_tflm": convert.to_int8_tflite(float_model, calibration)}
    write_bytes(run_dir / "model_ptq_int8.tflite", candidates["ptq_int8_tflm"])
    if qat_model is not None:
        candidates["qat_int8_tflm"] = convert.to_int8_tflite(qat_model, calibration)
        write_bytes(run_dir / "model_qat_int8.tflite", candidates["qat_int8_tflm"])
    timings["convert"] = time.monotonic() - t0
    print(f"converted to int8 in {timings['convert']:.1f}s")

    t0 = time.monotonic()
    results = {"float": _keras_metrics(float_model, x_test, y_test, pre.num_classes)}
    if qat_model is not None:
        results["qat_keras"] = _keras_metrics(qat_model, x_test, y_test, pre.num_classes)
    arenas = {}
    for key, flatbuffer in candidates.items():
        r = verify.evaluate_classifier(flatbuffer, {"val": (x_val, y_val), "test": (x_test, y_test)},
                                       pre.num_classes, workers=config.workers,
                                       label=f"TFLM {key.split('_')[0].upper()} int8")
        arenas[key] = r["arena"]
        results[key] = {**r["test"], "val_accuracy": r["val"]["accuracy"]}
    timings["evaluate"] = time.monotonic() - t0

    # Choose on validation accuracy, never on the test set; a tie goes to QAT.
    selected = max(candidates, key=lambda k: (results[k]["val_accuracy"], k == "qat_int8_tflm"))
    write_bytes(run_dir / SELECTED_MODEL, candidates[selected])
    results["selected"] = selected
    results["selection"] = (f"{selected} has the higher validation accuracy in TFLM "
                            + ", ".join(f"{k} {results[k]['val_accuracy']:.4f}" for k in candidates)
                            + " (ties go to QAT)")
    info = read_model(candidates[selected])
    histories = {"float": train.read_history(run_dir / "history.csv"),
                 "QAT": train.read_history(run_dir / "history_qat.csv")}
    report.plot_training_curves(histories, run_dir / "plots" / "training_curves.png")
    timings["total"] = time.monotonic() - t_start
    rep = {
        "run_dir": str(run_dir),
        "dataset": dataset.summary(),
        "metrics": results,
        "model": {"name": config.model, "params": int(float_model.count_params()),
                  "tflite_bytes": info.size, "sha256": info.sha256, **arenas[selected].to_dict(),
                  "arena_32bit": arena.estimate(info, DEFAULT_ARENA_PROFILE).to_dict(),
                  "ops": info.op_names, "input": info.to_dict()["inputs"][0],
                  "output": info.to_dict()["outputs"][0],
                  "candidates": {k: {"tflite_bytes": len(v), **arenas[k].to_dict()}
                                 for k, v in candidates.items()}},
        "training": {"batch_size": batch, "optimizer": config.optimizer, "lr": config.lr,
                     **{phase: stages[phase] for phase in ("float", "qat") if phase in stages}},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    report.write_report(run_dir, rep)
    report.write_manifest(run_dir, config=config.to_dict(), data_fingerprint=dataset.fingerprint(),
                          command=command or sys.argv, seed=config.seed)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return rep


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


def _compile(model, optimizer: str, lr: float) -> None:
    _, keras, _ = load()
    model.compile(optimizer=train.make_optimizer(optimizer, lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])


def _keras_metrics(model, x, y, num_classes) -> dict:
    scores = model.predict(x, batch_size=512, verbose=0)
    return metrics.classification(y, scores, num_classes)
