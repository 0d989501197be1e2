"""A run is a folder: :class:`RunFolder` owns the name of every file in it and the
checks for creating, opening and resuming one.  Later commands take a run folder or a
model file; :func:`resolve` turns either into the model path and the run around it.

File layout (everything later commands need is found from the folder)::

    config.json  preprocessing.json  preprocessing_float.json  data_sha256.json  splits.json
    lr_range.json (--lr auto)  stages.json  float_best.h5  qat_best_weights.h5  history.csv
    history_qat.csv
    model_ptq_int8.tflite  model_qat_int8.tflite  model_int8.tflite
    report.json  report.md  report.html  manifest.json  plots/  tensorboard/
    test_predictions.npz (per-sample outputs behind the galleries and ROC/PR curves)
    checkpoints/ (while training)  firmware/<target>/
    verify/<data name>/result.json, predictions.csv (verify --data)
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import record as record_file
from .artifacts import atomic_path, read_json, sha256_file, write_json
from .config import RunConfig
from .errors import TflmpError
from .firmware_project import META_FILE
from .preprocessing import Preprocessing
from .record import RunRecord

_PACKAGES = ("tflmp", "tensorflow", "tensorflow-cpu", "tf-keras",
             "tensorflow-model-optimization", "tflite-micro", "numpy", "scikit-learn")
_FRESH_START = "start a new run"


class RunFolder:
    """One training run's folder and every file name in it."""

    CONFIG = "config.json"
    PREPROCESSING = "preprocessing.json"  # what the int8 models take
    FLOAT_PREPROCESSING = "preprocessing_float.json"  # what the float Keras model takes
    DATA_SHA256 = "data_sha256.json"
    SPLITS = "splits.json"  # the sample ids of each split: the run's exact data
    STAGES = "stages.json"
    FLOAT_MODEL = "float_best.h5"
    QAT_WEIGHTS = "qat_best_weights.h5"
    HISTORY = {"float": "history.csv", "qat": "history_qat.csv"}
    CANDIDATES = {"ptq_int8_tflm": "model_ptq_int8.tflite",
                  "qat_int8_tflm": "model_qat_int8.tflite"}
    SELECTED_MODEL = "model_int8.tflite"
    REPORT = record_file.FILE_NAME
    REPORT_MD, REPORT_HTML = "report.md", "report.html"
    MANIFEST = "manifest.json"
    PLOTS = "plots"
    TRAINING_CURVES = "plots/training_curves.png"
    LR_RANGE = "lr_range.json"  # --lr auto: the sweep and the chosen rate
    LR_RANGE_PLOT = "plots/lr_range.png"
    CHECKPOINTS = "checkpoints"
    TENSORBOARD = "tensorboard"
    FIRMWARE = "firmware"
    NEW_DATA = "verify"  # verify --data: verify/<data name>/result.json and predictions.csv
    NEW_DATA_RESULT = "result.json"
    NEW_DATA_PREDICTIONS = "predictions.csv"
    CV = "cv"  # --cv: folds.json and one fold-<i>.json per finished fold
    FOLDS = "cv/folds.json"
    # per-sample test (and validation) outputs of float and the selected int8 model, and
    # the raw samples of the error galleries: reports re-render from them
    PREDICTIONS = "test_predictions.npz"
    GALLERIES = {"int8_wrong": "plots/gallery_int8_wrong.png",
                 "disagree": "plots/gallery_disagree.png"}
    ROC_PR = "plots/roc_pr.png"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.created: list[Path] = []  # folders create() made (outermost first)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # --- creating and opening ---------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, config: RunConfig) -> "RunFolder":
        """A new run folder holding ``config.json``; refuses a folder with a run in it."""
        run = cls(path)
        if (run.path / cls.REPORT).exists():
            raise TflmpError(f"{run.path} already holds a finished run; choose another --out")
        if (run.path / cls.CONFIG).exists():
            raise TflmpError(f"{run.path} already holds a run; continue it with --resume "
                             f"{run.path} or choose another --out")
        if run.path.exists() and not run.path.is_dir():
            raise TflmpError(f"--out {run.path} is a file; choose a folder")
        # the folders this creates, outermost first: discard() removes them again
        run.created = [p for p in (run.path, *run.path.parents) if not p.exists()][::-1]
        run.path.mkdir(parents=True, exist_ok=True)
        write_json(run.file(cls.CONFIG), config.to_dict())
        return run

    def save_config(self, config: RunConfig) -> None:
        """Rewrite ``config.json`` (a run's settings once decided for its data)."""
        write_json(self.file(self.CONFIG), config.to_dict())
        self.__dict__.pop("config", None)  # the cached_property reads the new file

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        """An existing run folder (one with ``config.json``)."""
        run = cls.at(path)
        if run is None:
            raise TflmpError(f"{path} is not a tflmp run folder (no config.json); pass the "
                             "--out folder of an earlier 'tflmp train'")
        return run

    @classmethod
    def at(cls, path: str | os.PathLike) -> "RunFolder | None":
        """The run folder at ``path``, or None when ``path`` is not one."""
        run = cls(path)
        return run if run.path.is_dir() and (run.path / cls.CONFIG).is_file() else None

    # --- files --------------------------------------------------------------------------

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def selected_model(self) -> Path:
        return self.path / self.SELECTED_MODEL

    @property
    def float_model(self) -> Path:
        return self.path / self.FLOAT_MODEL

    @property
    def qat_weights(self) -> Path:
        return self.path / self.QAT_WEIGHTS

    def history(self, phase: str) -> Path:
        return self.path / self.HISTORY[phase]

    def checkpoints(self, phase: str) -> Path:
        return self.path / self.CHECKPOINTS / phase

    def tensorboard(self, phase: str) -> Path:
        return self.path / self.TENSORBOARD / phase

    def candidate(self, key: str) -> Path:
        return self.path / self.CANDIDATES[key]

    def candidate_key(self, model_path: Path, selected: str) -> str | None:
        """The int8 candidate a model file of this run is (``selected`` for the selected
        model's file), or None for a file the run did not convert."""
        if Path(model_path).resolve().parent != self.path.resolve():
            return None
        by_file = {self.SELECTED_MODEL: selected,
                   **{name: key for key, name in self.CANDIDATES.items()}}
        return by_file.get(Path(model_path).name)

    def cv_fold(self, index: int) -> Path:
        """A finished cross-validation fold's result (1-based ``index``)."""
        return self.path / self.CV / f"fold-{index}.json"

    def cv_scratch(self, index: int) -> Path:
        """Where a cross-validation fold trains (removed once the fold is recorded)."""
        return self.path / self.CV / f"fold-{index}"

    def plot(self, name: str) -> Path:
        return self.path / self.PLOTS / name

    def firmware_dir(self, target: str) -> Path:
        return self.path / self.FIRMWARE / target

    def new_data_dir(self, name: str) -> Path:
        """Where ``verify --data`` keeps what it measured on data named ``name``."""
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip(".")
        return self.path / self.NEW_DATA / (safe or "data")

    def new_data_results(self) -> list[Path]:
        """The ``result.json`` of every ``verify --data`` on this run, by name."""
        return sorted((self.path / self.NEW_DATA).glob(f"*/{self.NEW_DATA_RESULT}"))
    def save_predictions(self, arrays: dict) -> Path:
        """Write ``test_predictions.npz`` atomically (plain arrays, no pickles)."""
        import numpy as np

        with atomic_path(self.file(self.PREDICTIONS)) as tmp:
            np.savez_compressed(tmp, **arrays)
        return self.file(self.PREDICTIONS)

    def predictions(self) -> dict | None:
        """The arrays of ``test_predictions.npz`` (None when the run has none)."""
        import numpy as np

        path = self.file(self.PREDICTIONS)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise TflmpError(f"{path} is unreadable ({e}); re-run `tflmp train`") from None

    # --- what the files hold ------------------------------------------------------------

    @cached_property
    def config(self) -> RunConfig:
        data = read_json(self.file(self.CONFIG), _FRESH_START)
        if data is None:
            raise TflmpError(f"{self.path} has no {self.CONFIG}; pass a tflmp run folder")
        try:
            return RunConfig.from_dict(data)
        except (ValueError, TypeError) as e:
            raise TflmpError(f"{self.file(self.CONFIG)} is corrupt ({e}); "
                             f"{_FRESH_START}") from None

    @cached_property
    def preprocessing(self) -> Preprocessing | None:
        """How raw samples become the int8 models' inputs (None before training)."""
        path = self.file(self.PREPROCESSING)
        return Preprocessing.load(path) if path.is_file() else None

    @cached_property
    def float_preprocessing(self) -> Preprocessing | None:
        """What the float Keras model takes (before int8 preparation moved any layer)."""
        path = self.file(self.FLOAT_PREPROCESSING)
        return Preprocessing.load(path) if path.is_file() else self.preprocessing

    def save_preprocessing(self, pre: Preprocessing, *, float_model: bool = False) -> None:
        """Store the int8 models' preprocessing (and the float model's too)."""
        pre.save(self.file(self.PREPROCESSING))
        if float_model:
            pre.save(self.file(self.FLOAT_PREPROCESSING))
        self.__dict__.pop("preprocessing", None)
        self.__dict__.pop("float_preprocessing", None)

    @property
    def has_record(self) -> bool:
        return self.file(self.REPORT).is_file()

    def record(self) -> RunRecord:
        return record_file.read_record(self.path)

    def write_record(self, rec: RunRecord) -> Path:
        return record_file.write_record(self.path, rec)

    def stages(self) -> dict:
        """The training phases finished so far ({"float": fit result, "qat": ...})."""
        return read_json(self.file(self.STAGES), _FRESH_START, default={})

    def save_stages(self, stages: dict) -> None:
        write_json(self.file(self.STAGES), stages)

    def check_same_data(self, fingerprint: dict) -> None:
        """A resumed run must see the data it started with (the first call records it)."""
        path = self.file(self.DATA_SHA256)
        saved = read_json(path, _FRESH_START)
        if saved is None:
            write_json(path, fingerprint)
        elif saved != fingerprint:
            raise TflmpError(f"the dataset differs from the one {self.path} started with; "
                             "resume with the same data or start a new run")

    def save_splits(self, splits: dict) -> Path:
        """Write ``splits.json``: which samples (by id) each split holds."""
        return write_json(self.file(self.SPLITS), splits)

    def has_progress(self) -> bool:
        """Whether any training epoch of this run has been saved (it can be resumed)."""
        return (bool(self.stages()) or any((self.path / self.CHECKPOINTS).glob("*/state.json"))
                or any((self.path / self.CV).glob("fold-*.json")))

    def discard(self, *, keep_folder: bool) -> None:
        """Remove a run that failed before any progress, so it blocks no retry: the whole
        folder, or (``keep_folder``: it existed before the run) only the run's files."""
        if not keep_folder:
            shutil.rmtree(self.path, ignore_errors=True)
            for parent in reversed(self.created[:-1]):  # made for this run
                try:
                    parent.rmdir()  # only while empty
                except OSError:
                    break
            return
        names = [self.CONFIG, self.PREPROCESSING, self.FLOAT_PREPROCESSING, self.DATA_SHA256,
                 self.STAGES, self.SPLITS, self.LR_RANGE, *self.HISTORY.values()]
        for name in names:
            self.file(name).unlink(missing_ok=True)
        for folder in (self.CHECKPOINTS, self.TENSORBOARD, self.CV):
            shutil.rmtree(self.path / folder, ignore_errors=True)

    def remove_checkpoints(self) -> None:
        shutil.rmtree(self.path / self.CHECKPOINTS, ignore_errors=True)

    def firmware_projects(self) -> list[Path]:
        """The project folders ``tflmp firmware`` wrote inside this run."""
        return sorted(p.parent for p in (self.path / self.FIRMWARE).glob(f"*/{META_FILE}"))

    def write_manifest(self, *, command: list[str], data_fingerprint: dict) -> Path:
        """Versions, seed, data hashes, command line and sha256 of every artifact."""
        artifacts = {}
        for path in sorted(self.path.rglob("*")):
            rel = path.relative_to(self.path).as_posix()
            if path.is_file() and rel != self.MANIFEST and not rel.startswith(
                    (self.CHECKPOINTS + "/", self.TENSORBOARD + "/")) \
                    and not path.name.startswith("."):
                artifacts[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        config = self.config
        return write_json(self.file(self.MANIFEST), {
            "schema_version": record_file.SCHEMA_VERSION,
            "command": command,
            "seed": config.seed,
            "config": config.to_dict(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(),
            "data_sha256": data_fingerprint,
            "artifacts": artifacts,
        })


def package_versions() -> dict:
    """Installed versions of the packages a run's results depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class ModelSource:
    """A model file, and the run folder it belongs to (None outside a run)."""

    model_path: Path
    run: RunFolder | None

    @property
    def default_name(self) -> str:
        """The name generated C is given without ``--name``: the run's model, or the file's."""
        if self.run is None:
            return self.model_path.stem
        return self.run.record().model.name if self.run.has_record else self.run.config.model_name

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The run's preprocessing, or a ``preprocessing.json`` beside the model file."""
        if self.run is not None:
            return self.run.preprocessing
        path = self.model_path.parent / RunFolder.PREPROCESSING
        return Preprocessing.load(path) if path.is_file() else None


def resolve(path: str | os.PathLike) -> ModelSource:
    """A run folder (its selected model) or a model file, with the run around it."""
    path = Path(path)
    if path.is_dir():
        run = RunFolder.at(path)
        if run is None:
            raise TflmpError(f"{path} is a folder but not a tflmp run (no config.json); pass "
                             "a .tflite file or a run folder")
        return ModelSource(run.selected_model, run)
    return ModelSource(path, RunFolder.at(path.parent))
