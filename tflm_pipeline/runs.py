"""A run folder as later commands see it: its settings, data and selected model.

``tflmp convert``, ``verify`` and ``firmware`` accept a run folder or a model file; this
module resolves either into the model path and, when the model sits in a run, the run's
config and preprocessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .data import Dataset, Preprocessing
from .errors import TflmpError
from .train import TrainConfig

SELECTED_MODEL = "model_int8.tflite"
FLOAT_PREPROCESSING = "preprocessing_float.json"


@dataclass
class ModelSource:
    model_path: Path
    run_dir: Path | None  # the run folder holding the model, if any
    config: TrainConfig | None

    @property
    def preprocessing(self) -> Preprocessing | None:
        path = (self.run_dir or self.model_path.parent) / "preprocessing.json"
        return Preprocessing.load(path) if path.is_file() else None

    @property
    def float_preprocessing(self) -> Preprocessing | None:
        """What the run's float Keras model takes (before int8 preparation)."""
        if self.run_dir and (self.run_dir / FLOAT_PREPROCESSING).is_file():
            return Preprocessing.load(self.run_dir / FLOAT_PREPROCESSING)
        return self.preprocessing

    def dataset(self) -> Dataset | None:
        """The run's dataset with the run's exact splits (None outside a run)."""
        if self.config is None:
            return None
        ds = self.config.load_data()
        if self.preprocessing is not None:
            ds.preprocessing = self.preprocessing
        return ds

    def report(self) -> dict | None:
        path = self.run_dir / "report.json" if self.run_dir else None
        return json.loads(path.read_text()) if path and path.is_file() else None


def resolve(path: str | Path) -> ModelSource:
    """A run folder (its selected model) or a model file, with the run around it."""
    path = Path(path)
    if path.is_dir():
        config = read_run_config(path)
        if config is None:
            raise TflmpError(f"{path} is a folder but not a tflmp run (no config.json); pass "
                             "a .tflite file or a run folder")
        return ModelSource(path / SELECTED_MODEL, path, config)
    config = read_run_config(path.parent)
    return ModelSource(path, path.parent if config else None, config)


def read_run_config(folder: str | Path) -> TrainConfig | None:
    """The ``config.json`` of a run folder, or None when ``folder`` is not a run."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise TflmpError(f"{path} is corrupt ({e}); start a new run") from None
