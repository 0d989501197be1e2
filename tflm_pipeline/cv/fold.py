"""One cross-validation fold, trained in its own process with the run's recipe
(:class:`~tflm_pipeline.quantize.recipe.Recipe`, the steps ``tflmp train`` follows):
float training, int8 preparation, QAT fine-tuning, PTQ and QAT int8 conversion, then the
float model (Keras) and both int8 models (TFLM) scored on the fold's held-out part and
the int8 choice made by the run's rule on the fold's validation part.

:func:`run_fold` is what the stage's process pool calls; everything it needs comes in a
picklable :class:`FoldJob`, and it returns the fold's row of ``report.json`` (plain
numbers only).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..preprocessing import Preprocessing
from ..record import FLOAT, PTQ_INT8, QAT_INT8

log = logging.getLogger(__name__)

SELECTED = "selected_int8"  # the int8 candidate the run's rule picks on the fold's val part


@dataclass
class FoldJob:
    index: int  # 1-based
    config: dict  # RunConfig.to_dict()
    task: str
    preprocessing: Preprocessing  # the float model's, fitted on the fold's training part
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
    from ..tf_env import load

    tf, keras, _ = load()
    if job.tf_threads:  # before TensorFlow's first op
        tf.config.threading.set_intra_op_parallelism_threads(job.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.tf_threads)
    from ..quantize.recipe import Recipe, select_int8
    from ..runs import RunFolder
    from ..tasks import get_task

    t0 = time.monotonic()
    log.info("fold %d: %s", job.index, " / ".join(
        f"{len(y)} {name}" for name, (_, y) in job.parts.items()))
    # the run's resolved settings (a config given directly is resolved as a run would)
    config = RunConfig.from_dict(job.config).resolved(len(job.parts["train"][1]), job.batch)
    task = get_task(job.task)
    keras.utils.set_random_seed(config.seed + job.index)
    raw = job.parts
    recipe = Recipe(RunFolder(scratch), config, task, job.preprocessing,
                    {"train": raw["train"], "val": raw["val"]}, batch=job.batch, lr=job.lr,
                    tensorboard=False)
    float_model = recipe.train_float()
    prepared = recipe.prepare(float_model)
    qat_model = recipe.train_qat(prepared.model) if config.qat_epochs else None
    candidates = recipe.convert(prepared.model, qat_model)
    scored = recipe.evaluate(float_model, qat_model, candidates, raw["held_out"], "held_out",
                             workers=job.tflm_workers,
                             label=lambda key: f"fold {job.index} {key}")
    selected, _ = select_int8(task, scored.scores, candidates)
    scores = {k: scored.scores[k] for k in (FLOAT, PTQ_INT8, QAT_INT8) if k in scored.scores}
    scores[SELECTED] = dict(scores[selected])
    return {"fold": job.index,
            "samples": {name: int(len(raw[name][1])) for name in ("train", "val", "held_out")},
            "scores": {k: _plain(v) for k, v in scores.items()},
            "selected": selected,
            "phases": {p: recipe.stages[p] for p in ("float", "qat") if p in recipe.stages},
            "seconds": round(time.monotonic() - t0, 1)}


def _plain(scores: dict) -> dict:
    """The scalar metrics of a task's score dict (no confusion matrices)."""
    return {k: float(v) for k, v in scores.items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}
