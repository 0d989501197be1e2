"""The cross-validation stage of ``tflmp train --cv K``.

The train+val pool is cut into K folds (:func:`~tflm_pipeline.data.folds.plan_folds`,
written to ``cv/folds.json``); each fold trains in a child process with the run's recipe
(:mod:`.fold`; a standardization fitted from data is fitted again on the fold's training
part) and, once finished, is written atomically to ``cv/fold-<i>.json``, so a
resumed run trains only the folds still missing.  The result is the per-fold table and
the mean and (sample) standard deviation of every model's metrics: the spread one random
split hides.  The run then trains its final model on all training data as usual.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from ..artifacts import read_json, write_json
from ..config import RunConfig
from ..data.folds import FoldPlan, plan_folds
from ..errors import TflmpError
from ..record import FLOAT, PTQ_INT8, QAT_INT8, title
from ..runs import RunFolder
from .fold import SELECTED, FoldJob, run_fold

log = logging.getLogger(__name__)

MODELS = (FLOAT, PTQ_INT8, QAT_INT8, SELECTED)
TITLES = {SELECTED: "selected int8 (TFLM)"}
# below this many cores per fold, folds run one at a time (see docs/BENCHMARKS.md,
# "Cross-validation": on 2 cores two 1-thread folds were not faster than one 2-thread fold)
CORES_PER_PARALLEL_FOLD = 2


def model_title(key: str) -> str:
    return TITLES.get(key) or title(key)


@dataclass
class CrossValidation:
    """``report.json``'s ``cross_validation`` block."""

    k: int
    method: str
    groups: str | None  # what a group is (None: folds by sample)
    metric: str
    folds: list[dict]  # per fold: samples, scores per model, selected, seconds
    mean: dict[str, dict]  # model -> metric -> mean over folds
    std: dict[str, dict]  # model -> metric -> sample standard deviation (ddof 1)
    seconds: float  # wall time of the stage (this session)
    jobs: int  # folds at once
    resumed: list[int] = field(default_factory=list)  # folds found finished on --resume
    notes: list[str] = field(default_factory=list)
    # "per fold": the data's standardization fitted on each fold's training part;
    # "fixed": a preprocessing that learns nothing from data (images /255)
    preprocessing: str = "fixed"

    def to_dict(self) -> dict:
        return {"k": self.k, "method": self.method, "groups": self.groups,
                "metric": self.metric, "models": [m for m in MODELS if m in self.mean],
                "folds": self.folds, "mean": self.mean, "std": self.std,
                "seconds": self.seconds,
                "fold_seconds": round(sum(f.get("seconds", 0) for f in self.folds), 1),
                "jobs": self.jobs, "resumed": self.resumed,
                "notes": self.notes, "preprocessing": self.preprocessing}


def summarize(folds: list[dict]) -> tuple[dict, dict]:
    """Mean and sample standard deviation of each model's metrics over ``folds``."""
    mean, std = {}, {}
    for key in MODELS:
        rows = [f["scores"][key] for f in folds if key in f["scores"]]
        if len(rows) != len(folds):
            continue
        names = [m for m in rows[0] if m != "n" and all(m in r for r in rows)]
        values = {m: np.array([r[m] for r in rows], np.float64) for m in names}
        mean[key] = {m: round(float(v.mean()), 6) for m, v in values.items()}
        std[key] = {m: round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 6)
                    for m, v in values.items()}
    return mean, std


def choose_jobs(requested: int | None, todo: int, cpus: int | None = None) -> int:
    """Folds to run at once: ``--cv-jobs``, else one per CORES_PER_PARALLEL_FOLD cores."""
    if requested is not None:
        return max(1, min(requested, todo))
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(todo, cpus // CORES_PER_PARALLEL_FOLD))


def cross_validate(run: RunFolder, config: RunConfig, dataset, task, *, batch: int,
                   lr: float) -> CrossValidation:
    """Train the folds not yet recorded in ``run``, then summarize every fold."""
    t0 = time.monotonic()
    x = np.concatenate([dataset.raw("train")[0], dataset.raw("val")[0]])
    y = np.concatenate([dataset.raw("train")[1], dataset.raw("val")[1]])
    groups = None
    if dataset.groups is not None:
        groups = np.concatenate([np.asarray(dataset.groups["train"]),
                                 np.asarray(dataset.groups["val"])])
    plan = plan_folds(y, config.cv, config.seed, config.val_split, groups)
    _save_plan(run, plan, dataset)
    done = {}
    for i in range(1, plan.k + 1):
        saved = read_json(run.cv_fold(i), f"delete {run.cv_fold(i)} to train fold {i} again")
        if saved is not None:
            done[i] = saved
    todo = [i for i in range(1, plan.k + 1) if i not in done]
    jobs = choose_jobs(config.cv_jobs, len(todo)) if todo else 1
    what = f"{plan.method}" + (", whole groups per part" if plan.grouped else "")
    log.info("cross-validation: %d folds over %d train+val samples (%s)%s", plan.k, len(y),
             what, f"; folds {', '.join(map(str, sorted(done)))} finished earlier"
             if done else "")
    if todo:
        log.info("cross-validation: training fold%s %s, %d at a time",
                 "s" if len(todo) > 1 else "", ", ".join(map(str, todo)), jobs)
        _train_folds(run, config, dataset, task, plan, x, y, todo, jobs, batch, lr, done)
    folds = [done[i] for i in range(1, plan.k + 1)]
    mean, std = summarize(folds)
    groups_are = None
    if plan.grouped:
        groups_are = ("the data's groups (--group-column)" if "groups" in (
            dataset.sample_ids or {}) else "source clips (augmented copies stay with theirs)")
    result = CrossValidation(plan.k, plan.method, groups_are,
                             task.metric, folds, mean, std,
                             round(time.monotonic() - t0, 1), jobs,
                             sorted(i for i in done if i not in todo), list(plan.notes),
                             "per fold" if dataset.standardized is not None else "fixed")
    for key in result.mean:
        log.info("cross-validation %s: %s %.4f +- %.4f over %d folds", model_title(key),
                 task.metric, mean[key][task.metric], std[key][task.metric], plan.k)
    return result


def _save_plan(run: RunFolder, plan: FoldPlan, dataset) -> None:
    """``cv/folds.json``; a resumed run must plan the same folds."""
    ids = dataset.split_ids()
    pool_ids = list(ids.get("train", [])) + list(ids.get("val", []))
    content = plan.to_dict(pool_ids, ids.get("id", "index"))
    path = run.file(RunFolder.FOLDS)
    saved = read_json(path, "start a new run")
    if saved is not None and saved != content:
        raise TflmpError(f"{path} holds other folds than this run plans now; start a new run")
    if saved is None:
        write_json(path, content)


def fold_jobs(run, config, dataset, task, plan, x, y, todo, batch, lr, tf_threads=None,
              tflm_workers=None) -> list[FoldJob]:
    """What each fold in ``todo`` trains with: its parts of the pool ``x``, ``y`` and the
    run's preprocessing, its standardization fitted on the fold's training part when the
    data fitted one (no held-out sample shapes the inputs its fold trains on)."""
    jobs = []
    for i in todo:
        fold = plan.folds[i - 1]
        parts = {name: (x[idx], y[idx]) for name, idx in
                 (("train", fold.train), ("val", fold.val), ("held_out", fold.held_out))}
        pre = dataset.preprocessing_fitted_on(parts["train"][0])
        jobs.append(FoldJob(i, config.to_dict(), task.name, pre, parts, batch, lr,
                            str(run.cv_scratch(i)), tf_threads, tflm_workers))
    return jobs


def _train_folds(run, config, dataset, task, plan, x, y, todo, jobs, batch, lr, done) -> None:
    """Run the ``todo`` folds in ``jobs`` child processes; each finished fold is written at
    once, so a failure or Ctrl-C keeps every fold finished before it."""
    cpus = os.cpu_count() or 1
    tf_threads = max(1, cpus // jobs) if jobs > 1 else None
    tflm_workers = max(1, cpus // jobs) if jobs > 1 else config.workers
    context = multiprocessing.get_context("spawn")  # a fresh TensorFlow per fold process
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        futures = {}
        for job in fold_jobs(run, config, dataset, task, plan, x, y, todo, batch, lr,
                             tf_threads, tflm_workers):
            futures[pool.submit(run_fold, job)] = job.index
        pending, failure = set(futures), None
        while pending and failure is None:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=futures.get):
                if future.exception() is not None:
                    failure = failure or (futures[future], future.exception())
                else:
                    _record_fold(run, futures[future], future.result(), plan.k, task.metric,
                                 done)
        if failure is not None:
            for future in pending:
                future.cancel()
            for future in sorted(pending, key=futures.get):  # running folds finish, are kept
                if not future.cancelled() and future.exception() is None:
                    _record_fold(run, futures[future], future.result(), plan.k, task.metric,
                                 done)
            i, error = failure
            log.error("cross-validation fold %d failed (its log: %s); folds %s are kept: "
                      "`tflmp train --resume %s` trains only the missing ones", i,
                      run.cv_scratch(i) / "fold.log", ", ".join(map(str, sorted(done))) or
                      "none", run.path)
            raise error
    except BaseException:  # a failed fold or Ctrl-C: queued folds do not start
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _record_fold(run: RunFolder, i: int, row: dict, k: int, metric: str, done: dict) -> None:
    write_json(run.cv_fold(i), row)  # atomic: a fold is recorded whole or not at all
    shutil.rmtree(run.cv_scratch(i), ignore_errors=True)
    done[i] = row
    s = row["scores"]
    log.info("fold %d/%d: %s", i, k, ", ".join(
        f"{model_title(key)} {s[key][metric]:.4f}" for key in (FLOAT, PTQ_INT8, QAT_INT8)
        if key in s) + f" ({row['seconds']:.0f} s)")
