"""The Optuna study behind ``tflmp tune``: where it is stored, how a killed worker's trial
is retried, how many trials count, and the Keras callback that prunes weak trials on
their float validation curve.

Storage is any database URL Optuna takes (``sqlite:///tune/study.db`` by default;
``postgresql://...`` or ``mysql+pymysql://...`` for workers on several machines).  Each
trial records the worker running it (``host:pid``); a trial left RUNNING by a dead
process on this host is failed and enqueued again (its run folder resumes), and
workers on other hosts are watched by Optuna's heartbeat.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import time
import warnings
from pathlib import Path

from ..errors import TflmpError

log = logging.getLogger(__name__)
HEARTBEAT_S = 30
GRACE_S = 180
OPEN_ATTEMPTS = 5  # a trial whose worker has not beaten for this long is failed and retried
RETRY_OF = "retry_of"  # user attr of an enqueued retry: the interrupted trial's number
RUN_DIR = "run_dir"
REASON = "reason"
WORKER = "worker"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_storage(tune_dir: Path) -> str:
    return f"sqlite:///{(tune_dir / 'study.db').resolve()}"


def open_study(storage_url: str, name: str, direction: str, seed: int | None,
               warmup_epochs: int = 2):
    """The study ``name`` in ``storage_url``, created or loaded (resume = same command).
    Trials are pruned on their float validation curve after ``warmup_epochs``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup_epochs)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    storage_url, engine_kwargs=_engine_kwargs(storage_url),
                    heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=_retry_callback)
            study = optuna.create_study(storage=storage, study_name=name,
                                        direction=direction, sampler=sampler, pruner=pruner,
                                        load_if_exists=True)
            break
        except (ImportError, ModuleNotFoundError) as e:
            raise TflmpError(f"--storage {storage_url}: its database driver is missing ({e}); "
                             "install it (e.g. pip install psycopg2-binary or pymysql)") from None
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's many URL and connection errors
            # workers starting together race to create the tables: the loser retries
            if attempt + 1 == OPEN_ATTEMPTS:
                raise TflmpError(f"--storage {storage_url}: cannot open the database: "
                                 f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
            time.sleep(0.5 + random.random() * (attempt + 1))
    if study.direction.name.lower() != direction:
        raise TflmpError(f"study '{name}' in {storage_url} {study.direction.name.lower()}s "
                         f"its objective, this task needs {direction}: use another --study")
    return study


def _engine_kwargs(url: str) -> dict:
    # several processes on one SQLite file: wait for the write lock instead of failing
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def _retry_callback(study, trial) -> None:
    """Optuna's heartbeat failed ``trial`` (its worker died): run its parameters again."""
    retry(study, trial)


def retry(study, trial) -> None:
    """Enqueue ``trial``'s parameters again; the retry resumes its run folder."""
    attrs = {RETRY_OF: trial.number}
    if RUN_DIR in trial.user_attrs:
        attrs[RUN_DIR] = trial.user_attrs[RUN_DIR]
    study.enqueue_trial(trial.params, user_attrs=attrs)
    log.info("trial %d was interrupted: its parameters are queued again", trial.number)


def recover_interrupted(study) -> int:
    """Fail and requeue the trials a dead process on this host left RUNNING; returns
    how many.  The state change is atomic in the database: one worker requeues each."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER, "")
        w_host, _, pid = worker.rpartition(":")
        if w_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another worker got there first
        retry(study, t)
        count += 1
    return count


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def counted(study) -> int:
    """Trials that count towards ``--trials``: complete, pruned, running, and failed
    for a reason (not the interrupted ones, which run again)."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
            n += 1
        elif t.state == TrialState.FAIL and REASON in t.user_attrs:
            n += 1
    return n


def pruning_callback(trial, monitor: str, sign: float):
    """A Keras callback reporting ``sign * logs[monitor]`` to ``trial`` each epoch and
    raising ``optuna.TrialPruned`` when the pruner says the curve is weak."""
    import optuna

    from ..tf_env import load

    _, keras, _ = load()

    class OptunaPruning(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is None or not math.isfinite(float(value)):
                return
            trial.report(sign * float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}: float {monitor} "
                                         f"{float(value):.4f} below the median of earlier "
                                         "trials")

    return OptunaPruning()
