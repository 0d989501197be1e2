"""The settings of one training run, with the command line's names: ``config.json``.

:class:`RunConfig` is flat and frozen: it holds decisions, never actions.  The stages
take typed views of it (``data.DataSpec.of(config)`` for the data); ``--resume`` reads
it back from the run folder, so a resumed run cannot drift from the one it continues.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import TflmpError

OPTIMIZERS = ("adam", "adamw", "sgd")
TASK_NAMES = ("classification", "regression", "autoencoder")  # tflm_pipeline.tasks
SCHEDULES = ("constant", "cosine", "onecycle")  # training.schedule
STRATEGIES = ("mirrored", "multi-worker")  # tf.distribute strategies (training.distribute)
DEFAULT_CALIBRATION_SAMPLES = 500


@dataclass(frozen=True)
class Recipe:
    """How a run trains what its settings leave open (:meth:`RunConfig.resolved`)."""

    name: str
    lr: float
    schedule: str
    qat_epochs: int
    min_steps: int = 0  # float training takes at least this many optimizer steps ...
    min_epochs: int = 1  # ... in at least min_epochs and at most max_epochs epochs
    max_epochs: int = 30
    qat_if_needed: bool = False  # QAT only when PTQ int8 loses a measurable amount

    def float_epochs(self, n_train: int, batch_size: int) -> int:
        """Epochs of ``n_train`` samples at ``batch_size`` that take ``min_steps`` steps."""
        steps = max(1, steps_per_epoch(n_train, batch_size))
        return min(max(math.ceil(self.min_steps / steps), self.min_epochs), self.max_epochs)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch over ``n_train`` samples (the last batch partial)."""
    return math.ceil(n_train / batch_size)


# With --epochs: today's settings (a constant rate halved on plateaus, 3 QAT epochs).
CLASSIC = Recipe("classic", lr=2e-3, schedule="constant", qat_epochs=3)
# Without --epochs: the fastest recipe found to reach 99.0 % int8 accuracy in TFLM with
# LeNet on MNIST for seeds 0, 1 and 2 (docs/BENCHMARKS.md, "Faster defaults"): one-cycle
# at three times the classic rate, a budget of optimizer steps instead of a fixed epoch
# count (4 epochs of MNIST at batch 128; small sets get more epochs), and QAT only when
# PTQ needs it (after an annealed schedule QAT's rate is a re-heat that rarely helps).
FAST = Recipe("fast", lr=6e-3, schedule="onecycle", qat_epochs=1, min_steps=1680,
              min_epochs=3, max_epochs=30, qat_if_needed=True)


def model_name(model: str) -> str:
    """A ``--model``'s short name, for run folders, reports and generated C: the zoo name,
    or the stem of the file or folder (``nets/kws.py:small`` -> ``kws``)."""
    path = model.split(".py:")[0] + ".py" if ".py:" in model else model
    return Path(path).name.split(".")[0] if ("/" in path or "." in path) else model


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a training run; saved as ``config.json`` for --resume."""

    model: str = "lenet"  # a zoo name, path.py[:function], or a saved Keras model
    task: str | None = None  # None: what the data implies, else the model's task
    reinit: bool = False  # a saved Keras model: train its architecture from scratch
    freeze: str | None = None  # "N" or "up-to-LAYER": frozen during float training
    trust_model: bool = False  # load Keras files whose Lambda layers run stored code
    dataset: str = "digits"
    data_dir: str | None = None
    # None: the FAST recipe decides epochs, and every setting below left None; with
    # epochs given, the CLASSIC one (see resolved())
    epochs: int | None = None
    batch_size: int | None = None  # None: chosen from the training-set size
    lr: float | str | None = None  # or "auto": a learning-rate range test picks it
    optimizer: str = "adam"
    patience: int = 8
    qat_epochs: int | None = None
    qat_lr: float | None = None  # None: lr / 10
    seed: int = 0
    val_split: float = 0.1
    split: tuple[float, float, float] = (7.0, 2.0, 1.0)
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    workers: int | None = None
    max_drop: float = 1.0  # percentage points the selected int8 model may lose vs float
    # file formats (see data.DataSpec)
    window: int | None = None
    stride: int | None = None
    label_column: str = "label"
    columns: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None
    color: str = "grayscale"
    audio_features: str = "mfcc"
    clip_seconds: float = 1.0
    augment: str | None = None  # e.g. "flip,shift=0.1" or "time-shift=100,noise=DIR"
    strategy: str | None = None  # tf.distribute: None, "mirrored" or "multi-worker"
    threshold: float | None = None  # anomaly detection: None = chosen on validation
    offline_plan: bool = True  # write a tighter tensor placement than TFLM's into the int8 models
    # data you can trust (data.checks): groups, duplicates, missing values, subsets
    group_column: str | None = None  # None: a session/subject/speaker/file/group column
    duplicates: str = "drop"  # cross-split exact duplicates: drop (from val/test), keep, error
    missing: str = "error"  # sensor CSV missing cells: error, drop, interpolate
    subset: int | None = None  # at most N samples per split, stratified
    class_weight: str | None = None  # "auto": weights inverse to the train class counts
    schedule: str | None = None  # float training's rate: constant, cosine or onecycle
    recipe: str | None = None  # the Recipe that filled the settings left open
    qat_if_needed: bool = False  # skip QAT when PTQ int8 already matches float (train.py)
    # keyword arguments for the model's builder (zoo or .py), e.g. {"filters": [8, 16]};
    # `tflmp tune` sets them per trial
    model_options: dict | None = None
    # --cv K: K-fold cross-validation over train+val before the final run (cv.stage);
    # cv_jobs folds at once (None: chosen from the CPU count)
    cv: int | None = None
    cv_jobs: int | None = None

    def validate(self) -> None:
        """Raise a one-line TflmpError for a setting no run can use (cheap: no imports)."""
        if self.epochs is not None and self.epochs < 1:
            raise TflmpError(f"--epochs must be at least 1, got {self.epochs}")
        if self.qat_epochs is not None and self.qat_epochs < 0:
            raise TflmpError(f"--qat-epochs must be 0 (no QAT) or more, got {self.qat_epochs}")
        if self.batch_size is not None and self.batch_size < 1:
            raise TflmpError(f"--batch-size must be positive, got {self.batch_size}")
        for flag, value in (("--lr", None if self.lr_auto else self.lr),
                            ("--qat-lr", self.qat_lr)):
            if value is not None and not (isinstance(value, (int, float)) and value > 0
                                          and math.isfinite(value)):
                raise TflmpError(f"{flag} must be a positive number, got {value}")
        if self.task is not None and self.task not in TASK_NAMES:
            raise TflmpError(f"--task must be one of {', '.join(TASK_NAMES)}, got '{self.task}'")
        if self.optimizer not in OPTIMIZERS:
            raise TflmpError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise TflmpError(f"--schedule must be one of {', '.join(SCHEDULES)}, "
                             f"got '{self.schedule}'")
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise TflmpError(f"--strategy must be one of {', '.join(STRATEGIES)}")
        if self.lr_auto and self.strategy == "multi-worker":
            raise TflmpError("--lr auto sweeps in one process; give multi-worker runs the "
                             "--lr a single-process `--lr auto` run chose")
        if not 0.0 < self.val_split < 1.0:
            raise TflmpError(f"--val-split must be between 0 and 1, got {self.val_split}")
        if len(self.split) != 3 or min(self.split) <= 0:
            raise TflmpError(f"--split needs three positive parts like 7:2:1, got {self.split}")
        if self.calibration_samples < 1:
            raise TflmpError("calibration_samples must be at least 1")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise TflmpError(f"--threshold must be a number or 'auto', got {self.threshold}")
        if self.workers is not None and self.workers < 1:
            raise TflmpError(f"--workers must be at least 1, got {self.workers}")
        for flag, value, allowed in (("--duplicates", self.duplicates, ("drop", "keep", "error")),
                                     ("--missing", self.missing, ("error", "drop", "interpolate")),
                                     ("--class-weight", self.class_weight, (None, "auto"))):
            if value not in allowed:
                raise TflmpError(f"{flag} must be one of "
                                 f"{', '.join(a for a in allowed if a)}, got '{value}'")
        if self.cv is not None and self.cv < 2:
            raise TflmpError(f"--cv must be 2 or more folds, got {self.cv}")
        if self.cv_jobs is not None and self.cv_jobs < 1:
            raise TflmpError(f"--cv-jobs must be at least 1, got {self.cv_jobs}")
        if self.cv and (self.strategy or self.lr_auto):
            raise TflmpError("--cv trains its folds in single processes at a fixed rate; drop "
                             f"{'--strategy' if self.strategy else '--lr auto'} (give the "
                             "--lr a `--lr auto` run chose)")
        if self.subset is not None and self.subset < 1:
            raise TflmpError(f"--subset must be a positive number of samples per split, got "
                             f"{self.subset}")

    def resolved(self, n_train: int, auto_batch: int) -> "RunConfig":
        """Every training setting decided, for ``n_train`` training samples (``auto_batch``:
        the automatic batch size for them).  Settings given stay; without ``epochs`` the
        rest follow :data:`FAST`, with ``epochs`` :data:`CLASSIC` (the automatic batch).
        A resolved config resolves to itself."""
        if self.epochs is not None and self.recipe is not None:
            return self
        recipe = FAST if self.epochs is None else CLASSIC
        # the fast recipe states its batch (its epochs depend on it); classic keeps None
        batch = self.batch_size or (auto_batch if recipe is FAST else None)
        epochs = self.epochs or recipe.float_epochs(n_train, batch)
        return replace(self, epochs=epochs, batch_size=batch, recipe=recipe.name,
                       lr=self.lr if self.lr is not None else recipe.lr,
                       schedule=self.schedule or recipe.schedule,
                       qat_epochs=recipe.qat_epochs if self.qat_epochs is None
                       else self.qat_epochs,
                       qat_if_needed=self.qat_if_needed or (recipe.qat_if_needed
                                                            and self.qat_epochs is None))

    def classic(self) -> "RunConfig":
        """The settings left open at :data:`CLASSIC`'s values, 30 epochs when none are
        given (``tflmp tune`` reads them as the ends of its ranges)."""
        return replace(self, epochs=self.epochs or 30,
                       lr=self.lr if self.lr is not None else CLASSIC.lr,
                       schedule=self.schedule or CLASSIC.schedule,
                       qat_epochs=CLASSIC.qat_epochs if self.qat_epochs is None
                       else self.qat_epochs)

    @property
    def model_name(self) -> str:
        return model_name(self.model)

    @property
    def lr_auto(self) -> bool:
        """Whether ``--lr auto`` asks for a learning-rate range test."""
        return self.lr == "auto"

    @property
    def qat_learning_rate(self) -> float:
        """The QAT fine-tuning rate: ``qat_lr``, or a tenth of ``lr`` (with ``--lr auto``,
        of the rate the range test chose: ``commands.train`` passes it)."""
        return self.qat_lr or self.lr / 10

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("split", "columns", "image_size"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """A config from ``config.json`` (unknown keys ignored, lists back to tuples)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        for key in ("split", "columns", "image_size"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**known)
