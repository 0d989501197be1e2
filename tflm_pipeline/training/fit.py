"""Fit a Keras model with the callbacks a long run needs, resumably.

One :func:`fit` serves float training and QAT fine-tuning.  Each epoch it keeps the
best model (by validation accuracy) and a "last" checkpoint with the optimizer and the
callbacks' state, both written atomically, so a killed run continues from its last
completed epoch with ``tflmp train --resume RUN_DIR``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..artifacts import atomic_path, read_json, write_json
from ..config import OPTIMIZERS
from ..errors import TflmpError, first_line
from ..tf_env import load

log = logging.getLogger(__name__)


def auto_batch_size(n_train: int) -> int:
    """Large batches keep both cores busy on big sets; small sets need more steps."""
    if n_train >= 20_000:
        return 128
    if n_train >= 5_000:
        return 64
    return 16


def make_optimizer(name: str, lr):
    """A Keras optimizer by its ``--optimizer`` name; ``lr`` a rate or a Keras schedule."""
    _, keras, _ = load()
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=1e-4)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    raise TflmpError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")


@dataclass
class FitResult:
    epochs_run: int
    best_epoch: int  # 1-based
    best_value: float
    stopped_early: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FitResult":
        return cls(d["epochs_run"], d["best_epoch"], d["best_value"], d["stopped_early"])


def fit(model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
        phase_dir: Path, history_csv: Path, best_path: Path,
        save_best: Callable[[object, Path], None], epochs: int, batch_size: int,
        patience: int, seed: int, monitor: str = "val_accuracy", mode: str = "max",
        augment: Callable | None = None, tensorboard_dir: Path | None = None,
        callbacks: list | None = None, class_weight: dict | None = None,
        schedule=None) -> FitResult:
    """Train a compiled ``model``; resume from ``phase_dir`` when it holds a checkpoint.

    The best epoch by ``monitor`` (``mode`` max or min) is kept with
    ``save_best(model, path)`` (float: full .h5; QAT: weights).  ``augment`` maps
    training batches (never validation data, never inside the model).  ``callbacks``
    are extra Keras callbacks, run after tflmp's own.  ``class_weight`` ({class: weight})
    weights the training loss per class.  ``schedule`` (a
    :class:`~tflm_pipeline.training.schedule.LrSchedule`) is the one the model's
    optimizer was compiled with (:meth:`~.LrSchedule.keras_rate`); without one (or
    "constant") the rate halves on a validation plateau.
    """
    tf, keras, _ = load()
    phase_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(phase_dir)
    initial_epoch = 0
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    if state is not None:
        model.optimizer.build(model.trainable_variables)
        _restore(ckpt, phase_dir, state["checkpoint"])
        initial_epoch = state["epoch"] + 1
        _truncate_history(history_csv, initial_epoch)
        log.info("resuming at epoch %d/%d from %s", initial_epoch + 1, epochs, phase_dir)
    if initial_epoch >= epochs:
        return FitResult(initial_epoch, state["best_epoch"] + 1, sign_of(mode) * state["best"],
                         False)

    x, y = train
    ds = (tf.data.Dataset.from_tensor_slices((x, y))
          .shuffle(len(x), seed=seed + initial_epoch, reshuffle_each_iteration=True)
          .batch(batch_size))
    if augment is not None:
        ds = ds.map(augment)
    # Under tf.distribute each worker takes every n-th batch of the same shuffled order.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options).prefetch(tf.data.AUTOTUNE)
    early = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                patience=max(2, patience // 2),
                                                min_lr=1e-6, verbose=1)
    scheduled = schedule is not None and schedule.per_step
    # No callback here has a per-batch hook: one makes Keras wait for every batch's
    # result (a fifth of an epoch of LeNet on MNIST).  A NaN loss ends training at the
    # end of its epoch (RunCheckpoint), a schedule runs inside the optimizer.
    own = [keras.callbacks.CSVLogger(str(history_csv), append=state is not None),
           early, plateau]
    if scheduled:  # first, so the CSV logger sees the rate it adds to the logs
        from .schedule import rate_logger

        own[1:] = [early]
        own.insert(0, rate_logger())
    if tensorboard_dir is not None:
        own.append(keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False,
                                               profile_batch=0))
    keeper = _run_checkpoint(ckpt, phase_dir, best_path, save_best,
                             [early] if scheduled else [early, plateau], state, monitor, mode)
    own.append(keeper)  # after tflmp's others: sees their updated state
    history = model.fit(ds, epochs=epochs, initial_epoch=initial_epoch,
                        validation_data=val, validation_batch_size=512,
                        callbacks=own + list(callbacks or []), class_weight=class_weight,
                        verbose=1 if sys.stdout.isatty() else 2)
    if keeper.nan_epoch is not None:
        where = (f"the best model (epoch {keeper.best_epoch + 1}) is kept in {best_path}"
                 if keeper.best_epoch >= 0 else "no epoch finished cleanly")
        raise TflmpError(f"training loss became NaN in epoch {keeper.nan_epoch + 1}; {where}; "
                         "rerun with a lower --lr")
    if keeper.best_epoch < 0:
        raise TflmpError(f"no {monitor} was recorded; check the validation data")
    epochs_run = initial_epoch + len(history.epoch)
    return FitResult(epochs_run, keeper.best_epoch + 1, sign_of(mode) * keeper.best,
                     early.stopped_epoch > 0)


def sign_of(mode: str) -> float:
    """+1 when larger values of the monitored metric are better, else -1."""
    return 1.0 if mode == "max" else -1.0


def _restore(ckpt, phase_dir: Path, name: str) -> None:
    """Read the phase's last checkpoint into the model and its optimizer.  One made before
    the schedule moved into the optimizer lacks the optimizer's current-rate variable,
    which the optimizer recomputes from its step count before every update: that one may
    be missing; anything else that does not match is a one-line error."""
    try:
        ckpt.read(str(phase_dir / name)).assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:  # unmatched objects; a shape that differs
        text = str(e)
        if ("Found 1 Python objects" in text and "'current_learning_rate:0'" in text
                and isinstance(e, AssertionError)):
            log.info("checkpoint %s has no current-rate variable: the schedule recomputes it",
                     name)
            return
        raise TflmpError(f"the checkpoint in {phase_dir} does not match this model and "
                         f"optimizer ({first_line(e)[:160]}); delete {phase_dir} to restart "
                         "this phase") from None


def _load_state(phase_dir: Path) -> dict | None:
    return read_json(phase_dir / "state.json",
                     f"delete {phase_dir} to restart this phase from scratch")


def _truncate_history(history_csv: Path, keep_epochs: int) -> None:
    """Drop rows of epochs the restored checkpoint has not seen (killed mid-save)."""
    if not history_csv.exists():
        return
    with open(history_csv, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < keep_epochs]
    with atomic_path(history_csv) as tmp:
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)


def read_history(history_csv: Path) -> list[dict]:
    """The rows of a CSVLogger history as floats ([] when there is none)."""
    if not history_csv.exists():
        return []
    with open(history_csv, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _run_checkpoint(ckpt, phase_dir: Path, best_path: Path, save_best, tracked, state,
                    monitor: str, mode: str):
    """A Keras callback keeping the best model and the resumable last state."""
    _, keras, _ = load()
    names = ("wait", "best", "cooldown_counter", "stopped_epoch")
    sign = sign_of(mode)  # internally, larger is better

    class RunCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = state["best"] if state else -math.inf
            self.best_epoch = state["best_epoch"] if state else -1
            self.nan_epoch = None

        def on_train_begin(self, logs=None):
            if state:  # the other callbacks reset themselves in their on_train_begin
                for cb, saved in zip(tracked, state["callbacks"]):
                    for k, v in saved.items():
                        setattr(cb, k, v)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if not math.isfinite(float(logs.get("loss", math.nan))):
                self.nan_epoch = epoch  # weights are garbage: keep the last good state
                self.model.stop_training = True
                return
            value = sign * float(logs.get(monitor, -sign * math.inf))
            if value > self.best:
                self.best, self.best_epoch = value, epoch
                save_best(self.model, best_path)
            prefix = ckpt.write(str(phase_dir / f"epoch-{epoch:04d}"))
            new_state = {"epoch": epoch, "checkpoint": os.path.basename(prefix),
                         "best": self.best, "best_epoch": self.best_epoch,
                         "callbacks": [{k: _plain(getattr(cb, k)) for k in names
                                        if hasattr(cb, k)} for cb in tracked]}
            write_json(phase_dir / "state.json", new_state)
            for old in phase_dir.glob("epoch-*"):
                if not old.name.startswith(new_state["checkpoint"] + "."):
                    old.unlink()

    return RunCheckpoint()


def _plain(v):
    v = np.asarray(v).item() if isinstance(v, (np.generic, np.ndarray)) else v
    return float(v) if isinstance(v, float) else v
