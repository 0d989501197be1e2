"""``tflmp tune``: an Optuna search over the model's own knobs, the training knobs and the
input size, for the best int8 model in TFLM that keeps the device limits.

Each trial builds its model untrained, converts it to int8 and measures it as ``tflmp
profile`` does; one that breaks ``--board``/``--max-flash``/``--max-ram``/
``--max-latency-ms`` is pruned before training.  The others train as ordinary runs
(``TUNE_DIR/trials/trial-NNN``), pruned on their float validation curve when weak; the
objective is the selected int8 model's validation metric in TFLM.  The study lives in a
database (SQLite in the tune folder unless ``--storage`` names another), so rerunning the
command resumes it and workers on several machines can share one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..artifacts import read_json, write_json
from ..config import RunConfig
from ..data import DataSpec, task_hint
from ..data.load import kind_of
from ..errors import TflmpError
from ..reports.tune_report import plot_pareto, render_tune_report
from ..runs import RunFolder
from ..tasks import get_task
from ..tflite.model_info import read_model, read_model_bytes
from ..training.model_source import builder_module, declared_task, parse_model
from ..tuning import study as st
from ..tuning.feasibility import DataCache, footprint, untrained_footprint
from ..tuning.results import (TrialRow, best_trial, pareto_front, trial_row,
                              write_trials_csv)
from ..tuning.space import (Limits, Param, apply_params, input_space, model_hyper,
                            model_space, training_space, violations)
from .train import train

log = logging.getLogger(__name__)
NO_DROP_LIMIT = 1e9  # a trial is judged by its int8 metric, never failed for its drop
SETTINGS = "tune.json"
BEST = "best"


@dataclass(frozen=True)
class TrialUpdate:
    """What the console prints after each trial."""

    number: int
    done: int  # trials counted so far (all workers)
    total: int
    state: str
    metric: float | None
    reason: str
    best_metric: float | None
    best_number: int | None
    eta_s: float | None  # estimated time left for this worker

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class TuneResult:
    tune_dir: Path
    storage: str
    study: str
    metric: str
    trials: list[TrialRow]
    front: list[TrialRow]
    best: TrialRow | None
    best_dir: Path | None  # a copy of the best feasible trial's run folder
    files: list[Path] = field(default_factory=list)
    trials_run: int = 0  # by this process
    seconds: float = 0.0

    @property
    def trials_per_hour(self) -> float | None:
        return 3600 * self.trials_run / self.seconds if self.seconds and self.trials_run else None

    def to_dict(self) -> dict:
        return {"tune_dir": str(self.tune_dir), "storage": self.storage, "study": self.study,
                "metric": self.metric, "trials": [r.to_dict() for r in self.trials],
                "front": [r.number for r in self.front],
                "best": self.best.to_dict() if self.best else None,
                "best_dir": str(self.best_dir) if self.best_dir else None,
                "files": [str(p) for p in self.files], "trials_run": self.trials_run,
                "seconds": round(self.seconds, 1), "trials_per_hour": self.trials_per_hour}


def default_tune_dir(config: RunConfig) -> Path:
    """The same folder for the same command, so rerunning it resumes the study."""
    return Path("tune") / f"{config.model_name}-{Path(config.dataset).stem}"


def search_space(config: RunConfig, n_train: int | None = None) -> list[Param]:
    """Every knob a trial samples: the model's own (its module's SEARCH_SPACE), the
    training knobs (batch sizes up to a quarter of ``n_train``), and the input size where
    the data allows it."""
    module = builder_module(parse_model(config.model))
    own = model_space(module) if module is not None else []
    return (own + training_space(config, n_train)
            + input_space(config, kind_of(DataSpec.of(config))))


def tune(config: RunConfig, out: str | Path | None = None, *, trials: int = 20,
         timeout: float | None = None, limits: Limits = Limits(), boards_file=None,
         storage: str | None = None, study: str | None = None,
         first_trials: list[dict] | None = None,
         on_trial: Callable[[TrialUpdate], None] | None = None) -> TuneResult:
    """Run (or resume) the study until it holds ``trials`` counted trials (all workers
    together) or ``timeout`` seconds pass; return the trials, Pareto front and best run.

    ``config`` gives the fixed settings and the ranges' ends: ``epochs`` and
    ``qat_epochs`` are the most a trial trains, ``window``/``image_size`` the largest input.
    ``first_trials`` are parameter sets (names as in :func:`search_space`) a new study
    tries before sampling, e.g. a model known to be good.
    """
    t0 = time.monotonic()
    config.validate()
    limits.check()
    if trials < 1:
        raise TflmpError(f"--trials must be at least 1, got {trials}")
    if timeout is not None and timeout <= 0:
        raise TflmpError(f"--timeout must be positive, got {timeout}")
    spec = parse_model(config.model)
    data = DataSpec.of(config)
    data.check()
    if limits.board:
        from ..mcu.boards import get_board

        get_board(limits.board, boards_file)
    task_name = config.task or task_hint(data) or declared_task(spec) or "classification"
    # the settings left open at their classic values: the ends of the ranges searched
    config = dataclasses.replace(config.classic(), model=spec.text, task=task_name,
                                 max_drop=NO_DROP_LIMIT)
    task = get_task(task_name)
    data_cache = DataCache()
    space = search_space(config, len(data_cache.get(config).y_train))
    tune_dir = Path(out) if out is not None else default_tune_dir(config)
    tune_dir.mkdir(parents=True, exist_ok=True)
    _write_settings(tune_dir, config, limits, trials, space)
    storage_url = storage or st.default_storage(tune_dir)
    name = study or tune_dir.resolve().name
    direction = "maximize" if task.higher_is_better else "minimize"
    # one seed for a study of its own; workers sharing a study must not draw the same points
    seed = config.seed if storage is None else None
    # a curve is judged after a third of the most epochs: small sets start noisy
    the_study = st.open_study(storage_url, name, direction, seed,
                              warmup_epochs=max(2, config.epochs // 3))
    if first_trials and not the_study.get_trials(deepcopy=False):
        for params in first_trials:
            the_study.enqueue_trial(_check_params(params, space))
    recovered = st.recover_interrupted(the_study)
    if recovered:
        log.info("%d interrupted trial(s) queued again", recovered)
    log.info("tune: study '%s' in %s, %d of %d trials done; searching %s", name, storage_url,
             st.counted(the_study), trials, ", ".join(p.name for p in space))

    objective = _Objective(config, space, limits, boards_file, tune_dir, task, data_cache)
    durations: list[float] = []
    ran = 0
    while st.counted(the_study) < trials:
        if timeout is not None and time.monotonic() - t0 >= timeout:
            log.info("tune: --timeout %gs reached", timeout)
            break
        started = time.monotonic()
        try:
            the_study.optimize(objective, n_trials=1, catch=(TflmpError,))
        except KeyboardInterrupt:
            _requeue_own(the_study, objective.current)
            raise
        durations.append(time.monotonic() - started)
        ran += 1
        rows = [trial_row(t) for t in the_study.get_trials(deepcopy=False)]
        _write_outputs(tune_dir, rows, task, config, limits, name, storage_url)
        if on_trial is not None:
            on_trial(_update(the_study, rows, objective.current, trials, durations, task,
                             timeout - (time.monotonic() - t0) if timeout else None))
    rows = [trial_row(t) for t in the_study.get_trials(deepcopy=False)]
    files, best_dir = _write_outputs(tune_dir, rows, task, config, limits, name, storage_url)
    best = best_trial(rows, task.higher_is_better)
    return TuneResult(tune_dir, storage_url, name, task.metric, rows,
                      pareto_front(rows, task.higher_is_better), best, best_dir, files, ran,
                      time.monotonic() - t0)


class _Objective:
    """One trial: sample, check the limits on the untrained int8 model, train, score."""

    def __init__(self, config: RunConfig, space: list[Param], limits: Limits, boards_file,
                 tune_dir: Path, task, data: DataCache):
        self.config, self.space, self.limits = config, space, limits
        self.boards_file, self.tune_dir, self.task = boards_file, tune_dir, task
        self.module = builder_module(parse_model(config.model))
        self.data = data
        self.current: int | None = None

    def __call__(self, trial) -> float:
        import optuna

        self.current = trial.number
        trial.set_user_attr(st.WORKER, st.worker_id())
        params = {p.name: _suggest(trial, p) for p in self.space}
        hyper = model_hyper(self.module, params) if self.module is not None else {}
        config = apply_params(self.config, params, hyper)
        try:
            dataset = self.data.get(config)
            fp = untrained_footprint(config, dataset, self.task.name, self.limits.board,
                                     self.boards_file)
            self._store(trial, fp)
            broken = violations(fp, self.limits)
            if broken:
                raise optuna.TrialPruned("infeasible before training: " + "; ".join(broken))
            run_dir = self._run_dir(trial)
            trial.set_user_attr(st.RUN_DIR, str(run_dir))
            sign = 1.0 if (self.task.monitor_mode == "max") == self.task.higher_is_better else -1.0
            callbacks = [st.pruning_callback(trial, self.task.monitor, sign)]
            command = ["tflmp", "tune", f"trial {trial.number}"]
            if RunFolder.at(run_dir) is not None:
                log.info("trial %d: resuming %s", trial.number, run_dir)
                result = train(resume=run_dir, callbacks=callbacks, command=command)
            else:
                result = train(config, run_dir, callbacks=callbacks, command=command)
            rec = result.record
            scores = rec.scores[rec.selected]
            trial.set_user_attr("test_metric", float(scores[self.task.metric]))
            run = RunFolder(result.run_dir)
            fp = footprint(read_model(read_model_bytes(run.selected_model)), self.limits.board,
                           self.boards_file)
            self._store(trial, fp)
            broken = violations(fp, self.limits)
            if broken:
                raise optuna.TrialPruned("infeasible after training: " + "; ".join(broken))
            return float(scores[f"val_{self.task.metric}"])
        except optuna.TrialPruned as e:
            trial.set_user_attr(st.REASON, str(e) or "pruned")
            raise
        except TflmpError as e:
            trial.set_user_attr(st.REASON, str(e))
            log.warning("trial %d failed: %s", trial.number, e)
            raise

    def _store(self, trial, fp) -> None:
        trial.set_user_attr("flash_bytes", fp.flash_bytes)
        trial.set_user_attr("ram_bytes", fp.ram_bytes)
        if fp.latency_ms is not None:
            trial.set_user_attr("latency_ms", round(fp.latency_ms, 4))

    def _run_dir(self, trial) -> Path:
        """A retried trial continues its predecessor's run folder when it saved progress."""
        earlier = trial.user_attrs.get(st.RUN_DIR)
        if earlier:
            run = RunFolder.at(earlier)
            if run is not None and run.has_progress() and not run.has_record:
                return Path(earlier)
        path = self.tune_dir / "trials" / f"trial-{trial.number:03d}"
        if path.exists():  # a trial number is used once; clear a half-made folder
            shutil.rmtree(path)
        return path


def _check_params(params: dict, space: list[Param]) -> dict:
    names = {p.name for p in space}
    unknown = sorted(set(params) - names)
    if unknown:
        raise TflmpError(f"first trial parameter(s) {', '.join(unknown)} are not searched; "
                         f"the search space has {', '.join(sorted(names))}")
    return params


def _suggest(trial, p: Param):
    if p.kind == "choice":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1),
                                 log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


def _requeue_own(study, number: int | None) -> None:
    """After Ctrl-C: run the interrupted trial again on the next start."""
    if number is None:
        return
    t = study.get_trials(deepcopy=False)[number]
    if t.state.name == "FAIL" and st.REASON not in t.user_attrs:
        st.retry(study, t)


def _update(study, rows, number, total, durations, task, time_left) -> TrialUpdate:
    row = next((r for r in rows if r.number == number), None)
    best = best_trial(rows, task.higher_is_better)
    done = st.counted(study)
    eta = (sum(durations) / len(durations)) * max(0, total - done) if durations else None
    if eta is not None and time_left is not None:
        eta = min(eta, max(0.0, time_left))
    return TrialUpdate(number if number is not None else -1, done, total,
                       row.state if row else "?", row.metric if row else None,
                       row.reason if row else "", best.metric if best else None,
                       best.number if best else None, eta)


def _write_settings(tune_dir: Path, config: RunConfig, limits: Limits, trials: int,
                    space: list[Param]) -> None:
    settings = {"config": config.to_dict(), "limits": limits.to_dict(), "trials": trials,
                "space": [p.to_dict() for p in space]}
    path = tune_dir / SETTINGS
    old = read_json(path, "delete it to start the study afresh", default=None)
    if old is not None and old.get("space") != json.loads(json.dumps(settings["space"])):
        log.warning("the search space differs from the one %s recorded; the study goes on "
                    "with the new one", path)
    write_json(path, settings)


def _write_outputs(tune_dir: Path, rows: list[TrialRow], task, config: RunConfig,
                   limits: Limits, name: str, storage: str) -> tuple[list[Path], Path | None]:
    """trials.csv, plots/pareto.png, report.md/html and best/ (the best trial's run)."""
    front = pareto_front(rows, task.higher_is_better)
    best = best_trial(rows, task.higher_is_better)
    files = [write_trials_csv(rows, tune_dir / "trials.csv")]
    png = plot_pareto(rows, front, task.metric, tune_dir / "plots" / "pareto.png",
                      task.higher_is_better)
    best_dir = _copy_best(tune_dir, best)
    states = {s: sum(r.state == s for r in rows)
              for s in ("complete", "pruned", "failed", "interrupted")}
    infeasible = sum(r.reason.startswith("infeasible") for r in rows)
    facts = [("study", f"{name} ({storage})"), ("model", config.model_name),
             ("dataset", Path(config.dataset).name),
             ("limits", ", ".join(f"{k} {v}" for k, v in limits.to_dict().items()
                                  if v is not None) or "none"),
             ("trials", f"{len(rows)}: {states['complete']} complete, {states['pruned']} "
                        f"pruned ({infeasible} infeasible), {states['failed']} failed, "
                        f"{states['interrupted']} interrupted and run again"),
             ("best", f"trial {best.number}: val {task.metric} {best.metric:.4f}, "
                      f"{best.flash_bytes:,} B flash, {best.ram_bytes:,} B arena"
              if best else "none yet")]
    md, html = render_tune_report(
        title=f"tflmp tune: {config.model_name} on {Path(config.dataset).name}",
        subtitle=[f"tune folder {tune_dir.resolve()}",
                  f"objective: the selected int8 model's validation {task.metric} in TFLM"],
        facts=facts, rows=rows, front=front, best=best, metric=task.metric, pareto_png=png,
        md_path=tune_dir / "report.md", html_path=tune_dir / "report.html")
    files += [p for p in (png, md, html) if p is not None]
    return files, best_dir


def _copy_best(tune_dir: Path, best: TrialRow | None) -> Path | None:
    """``best/``: a copy of the best trial's run folder (a plain run folder, so convert,
    firmware and verify take it).  Replaced when a better trial finishes."""
    target = tune_dir / BEST
    marker = target / "tune_trial.json"
    if best is None or not best.run_dir:
        return target if RunFolder.at(target) else None
    current = read_json(marker, f"delete {target}", default={})
    if current.get("trial") == best.number and RunFolder.at(target) is not None:
        return target
    source = Path(best.run_dir)
    if RunFolder.at(source) is None or not RunFolder(source).has_record:
        log.warning("the best trial's run folder %s is not on this machine; best/ keeps "
                    "the best local one", source)
        return target if RunFolder.at(target) else None
    staging = tune_dir / f".best-{st.worker_id().replace(':', '-')}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("checkpoints",
                                                                    "tensorboard"))
    write_json(staging / "tune_trial.json", {"trial": best.number, "metric": best.metric,
                                             "source": str(source.resolve())})
    old = tune_dir / f".old-{st.worker_id().replace(':', '-')}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("best/ is now trial %d (%s)", best.number, source)
    return target
