"""``tflmp verify``: the device-emulating harness.  Runs an int8 model over a dataset
split in the real TFLM interpreter and reports accuracy, confusion and arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import arena, emulate, report, runs
from .codegen.settings import DEFAULT_ARENA_PROFILE
from .data import Preprocessing, load_dataset
from .errors import TflmpError
from .model_info import ModelInfo, read_model, read_model_bytes
from .progress import Progress
from .tasks import CLASSIFICATION, TASKS, Task


def evaluate(model: bytes, task: Task, splits: dict[str, tuple[np.ndarray, np.ndarray]],
             num_classes: int, *, info: ModelInfo | None = None, workers: int | None = None,
             label: str = "TFLM") -> dict:
    """The task's metrics of ``model`` in TFLM on each split of float inputs.

    All splits run in one pass over the CPU cores; the smallest working arena is
    measured first and reported under ``"arena"``.
    """
    info = info or read_model(model)
    _check_outputs(info, task, num_classes)
    arena_size = emulate.find_arena_size(model, info=info)
    x_all = np.concatenate([x for x, _ in splits.values()])
    _check_input_shape(info, x_all.shape[1:])
    x_all = x_all.reshape((-1, *info.inputs[0].shape[1:]))
    out = emulate.run(model, emulate.quantize(x_all, info.inputs[0]), info=info,
                      arena_size=arena_size.bytes, workers=workers, label=label)[0]
    outputs = emulate.dequantize(out, info.outputs[0])
    result, start = {"arena": arena_size}, 0
    for name, (x, y) in splits.items():
        result[name] = task.score(x, y, outputs[start:start + len(x)], num_classes)
        start += len(x)
    return result


def verify_model(model_path: str | Path, *, dataset: str | None = None,
                 data_dir: str | None = None, preprocessing: str | Path | None = None,
                 split: str = "test", workers: int | None = None, ladder: bool = False,
                 tolerance: int = 0) -> dict:
    """Evaluate a ``.tflite`` (or a run folder's selected model) in TFLM.

    Preprocessing comes from ``preprocessing``, else the ``preprocessing.json`` of the
    run folder holding the model (on the run's own data), else the dataset's default.
    ``ladder`` (run folders only) adds the parity ladder Keras float -> Keras QAT ->
    TFLite reference -> TFLM, the first diverging layer when TFLite and TFLM differ by
    more than ``tolerance`` int8 steps, and the per-layer quantization error; they are
    also stored in the run's report.json for ``tflmp report``.
    """
    from .models import task_of

    src = runs.resolve(model_path)
    if split not in ("train", "val", "test"):
        raise TflmpError(f"--split must be train, val or test, got '{split}'")
    model = read_model_bytes(src.model_path)
    info = read_model(model)
    if dataset is None or (src.config is not None and dataset == src.config.dataset):
        ds = src.dataset()  # the run's data, splits and preprocessing
        if ds is None:
            raise TflmpError("--dataset is required for a model outside a tflmp run folder")
    else:
        ds = load_dataset(dataset, data_dir)
    if preprocessing is not None:
        if not Path(preprocessing).is_file():
            raise TflmpError(f"--preprocessing {preprocessing} does not exist")
        ds.preprocessing = Preprocessing.load(preprocessing)
    x, y = ds.inputs(split)
    task = TASKS[task_of(src.config.model)] if src.config else CLASSIFICATION
    result = evaluate(model, task, {split: (x, y)}, ds.preprocessing.num_classes, info=info,
                      workers=workers, label=f"TFLM {split}")
    mcu = arena.estimate(info, DEFAULT_ARENA_PROFILE) if info.subgraphs == 1 else None
    extra = {}
    if ladder:
        extra = _ladder(src, ds, split, model, task, tolerance, workers)
        if src.report() is not None:
            report.render_reports(src.run_dir)
    return {**extra,
        "model": str(src.model_path), "sha256": info.sha256, "tflite_bytes": info.size,
        "dataset": ds.summary()["name"], "split": split, "samples": int(len(y)),
        "labels": ds.preprocessing.labels, "ops": info.op_names,
        "metrics": result[split], **result["arena"].to_dict(),
        "arena_32bit": mcu.to_dict() if mcu else None,
    }


def run_ladder(run_dir: Path, *, split: str = "test", tolerance: int = 0,
               workers: int | None = None) -> dict:
    """The parity ladder and per-layer error of a run's selected model, stored in its
    report.json (see :func:`verify_model`)."""
    from .models import task_of

    src = runs.resolve(run_dir)
    return _ladder(src, src.dataset(), split, read_model_bytes(src.model_path),
                   TASKS[task_of(src.config.model)], tolerance, workers)


def _ladder(src, ds, split, model, task, tolerance, workers) -> dict:
    from . import parity, qat

    if src.run_dir is None or not (src.run_dir / "float_best.h5").is_file():
        raise TflmpError("--ladder needs a tflmp run folder (it runs the run's Keras models); "
                         "pass the run folder or a model inside one")
    run = src.run_dir
    float_model = qat.load_float(run / "float_best.h5")
    qat_weights = run / "qat_best_weights.h5"
    qat_model = qat.load_qat(run / "float_best.h5", qat_weights) if qat_weights.is_file() else None
    raw, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}").astype(np.int64)
    x_float = src.float_preprocessing.apply(raw)
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
        q = emulate.quantize(x_int8[picks].reshape((-1, *info.inputs[0].shape[1:])),
                             info.inputs[0])
        divergence = parity.first_divergence(model, q, tolerance)
    result["first_divergence"] = divergence
    progress.update(2)
    x_train = src.float_preprocessing.apply(ds.x_train)
    layers = parity.quantization_error(float_model, x_train[:200], x_float[:50])
    progress.update(3)
    progress.close()
    if src.report() is not None:
        rep = src.report()
        rep["parity"] = {k: v for k, v in result.items() if k != "disagreeing_samples"}
        rep["per_layer_error"] = layers
        report.write_report(run, {k: v for k, v in rep.items() if k != "schema_version"})
    return {"parity": result, "per_layer_error": layers}


def _check_outputs(info: ModelInfo, task: Task, num_classes: int) -> None:
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise TflmpError(f"the model has {len(info.inputs)} inputs and {len(info.outputs)} "
                         f"outputs; {task.name} needs one of each")
    out, inp = info.outputs[0], info.inputs[0]
    if task.name == "classification" and int(np.prod(out.shape)) != num_classes:
        raise TflmpError(f"the model outputs {list(out.shape)} values but the dataset has "
                         f"{num_classes} classes; is it the right model for this dataset?")
    if task.name == "autoencoder" and int(np.prod(out.shape)) != int(np.prod(inp.shape)):
        raise TflmpError(f"an autoencoder must output as many values as it takes; this one "
                         f"maps {list(inp.shape)} to {list(out.shape)}")


def _check_input_shape(info: ModelInfo, sample_shape) -> None:
    want = tuple(info.inputs[0].shape[1:])
    if int(np.prod(want)) != int(np.prod(sample_shape)):
        raise TflmpError(f"the model expects inputs of shape {list(want)} but the data gives "
                         f"{list(sample_shape)}; pass the dataset the model was trained on")
