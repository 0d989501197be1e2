"""Train stage: fit a Keras model with the callbacks a long run needs, resumably.

One :func:`fit` serves float training and QAT fine-tuning.  Each epoch it keeps the
best model (by validation accuracy) and a "last" checkpoint with the optimizer and the
callbacks' state, both written atomically, so a killed run continues from its last
completed epoch with ``tflmp train --resume RUN_DIR``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .artifacts import atomic_path, write_json
from .errors import TflmpError
from .tf_env import load

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved as ``config.json`` for --resume."""

    model: str = "lenet"
    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int = 30
    batch_size: int | None = None  # None: chosen from the training-set size
    lr: float = 2e-3
    optimizer: str = "adam"
    patience: int = 8
    qat_epochs: int = 3
    qat_lr: float | None = None  # None: lr / 10
    seed: int = 0
    val_split: float = 0.1
    split: tuple[float, float, float] = (7.0, 2.0, 1.0)
    calibration_samples: int = 500
    workers: int | None = None
    max_drop: float = 1.0  # percentage points the selected int8 model may lose vs float
    # file formats (see data.load_dataset)
    window: int | None = None
    stride: int | None = None
    label_column: str = "label"
    columns: list[str] | None = None
    image_size: tuple[int, int] | None = None
    color: str = "grayscale"
    audio_features: str = "mfcc"
    clip_seconds: float = 1.0
    augment: str | None = None  # e.g. "flip,shift=0.1" or "time-shift=100,noise=DIR"
    strategy: str | None = None  # tf.distribute: None, "mirrored" or "multi-worker"

    def validate(self) -> None:
        if self.epochs < 1:
            raise TflmpError(f"--epochs must be at least 1, got {self.epochs}")
        if self.qat_epochs < 0:
            raise TflmpError(f"--qat-epochs must be 0 (no QAT) or more, got {self.qat_epochs}")
        if self.batch_size is not None and self.batch_size < 1:
            raise TflmpError(f"--batch-size must be positive, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TflmpError(f"--lr must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise TflmpError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        from .distribute import STRATEGIES

        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise TflmpError(f"--strategy must be one of {', '.join(STRATEGIES)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("split", "image_size"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**known)

    def augment_options(self) -> dict:
        from .augment import parse_augment

        return parse_augment(self.augment) if self.augment else {}

    def load_data(self):
        """The run's dataset, with its splits and file-format options."""
        from .data import load_dataset

        options = self.augment_options()
        files = {"window": self.window, "stride": self.stride, "label_column": self.label_column,
                 "columns": self.columns, "image_size": self.image_size, "color": self.color,
                 "audio_features": self.audio_features, "clip_seconds": self.clip_seconds,
                 "audio_augment": None if not options or "flip" in options else options}
        return load_dataset(self.dataset, self.data_dir, seed=self.seed, split=self.split,
                            val_fraction=self.val_split, files=files)

    def image_augmenter(self):
        """The tf.data map function for image augmentation, or None."""
        options = self.augment_options()
        if not options or "flip" not in options:
            return None
        from .augment import image_augmenter

        return image_augmenter(**options, seed=self.seed)


def auto_batch_size(n_train: int) -> int:
    """Large batches keep both cores busy on big sets; small sets need more steps."""
    if n_train >= 20_000:
        return 128
    if n_train >= 5_000:
        return 64
    return 16


def make_optimizer(name: str, lr: float):
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


def fit(model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
        phase_dir: Path, history_csv: Path, best_path: Path,
        save_best: Callable[[object, Path], None], epochs: int, batch_size: int,
        patience: int, seed: int, monitor: str = "val_accuracy", mode: str = "max",
        augment: Callable | None = None, tensorboard_dir: Path | None = None) -> FitResult:
    """Train a compiled ``model``; resume from ``phase_dir`` when it holds a checkpoint.

    The best epoch by ``monitor`` (``mode`` max or min) is kept with
    ``save_best(model, path)`` (float: full .h5; QAT: weights).  ``augment`` maps
    training batches (never validation data, never inside the model).
    """
    tf, keras, _ = load()
    phase_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(phase_dir)
    initial_epoch = 0
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    if state is not None:
        model.optimizer.build(model.trainable_variables)
        ckpt.read(str(phase_dir / state["checkpoint"])).assert_existing_objects_matched()
        initial_epoch = state["epoch"] + 1
        _truncate_history(history_csv, initial_epoch)
        print(f"resuming at epoch {initial_epoch + 1}/{epochs} from {phase_dir}")
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
    callbacks = [keras.callbacks.TerminateOnNaN(),
                 keras.callbacks.CSVLogger(str(history_csv), append=state is not None),
                 early, plateau]
    if tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(tensorboard_dir), write_graph=False,
                                                     profile_batch=0))
    keeper = _run_checkpoint(ckpt, phase_dir, best_path, save_best, [early, plateau], state,
                             monitor, mode)
    callbacks.append(keeper)  # last: sees the other callbacks' updated state
    history = model.fit(ds, epochs=epochs, initial_epoch=initial_epoch,
                        validation_data=val, validation_batch_size=512,
                        callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)
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
    return 1.0 if mode == "max" else -1.0


def _load_state(phase_dir: Path) -> dict | None:
    path = phase_dir / "state.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise TflmpError(f"{path} is unreadable ({e}); delete {phase_dir} to restart "
                         "this phase from scratch") from None


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


def save_keras_model(model, path: Path) -> None:
    """Write a full float model (architecture + weights) atomically as HDF5."""
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": it reloads reliably
        model.save(tmp, include_optimizer=False)


def save_weights(model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save_weights(tmp)
