"""Keras model files: load one safely, save float models and weights atomically.

Loading runs code stored in the file for ``Lambda`` layers (marshalled Python bytecode
in ``.h5``): a model holding one is refused unless the caller trusts it.  Every command
that opens a user's or a run's Keras file goes through :func:`load_keras_model`.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

from ..artifacts import atomic_path
from ..errors import TflmpError, first_line
from ..tf_env import load

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


def load_keras_model(path: str | Path, *, trust: bool = False):
    """A float Keras model (``.h5`` or ``.keras``), uncompiled.

    A model with Lambda layers (or layers carrying a serialized function) is refused
    unless ``trust`` is given.
    """
    path = Path(path)
    if not path.exists():
        raise TflmpError(f"Keras model {path} does not exist")
    if path.is_file() and not trust:
        unsafe = _code_layers(_saved_config(path))
        if unsafe:
            raise TflmpError(f"{path} contains layers that run code stored in the file "
                             f"({', '.join(unsafe)}); load it only if you trust its source, "
                             "with --trust-model")
    from .keras3 import is_keras3, rebuild

    if path.is_file() and is_keras3(path):
        return rebuild(path)
    _, keras, _ = load()
    try:
        if path.is_dir():  # a SavedModel folder
            return keras.models.load_model(path, compile=False)
        return keras.models.load_model(path, compile=False, safe_mode=not trust)
    except (OSError, ValueError, TypeError) as e:
        raise TflmpError(f"cannot load Keras model {path}: {first_line(e)}") from None


def save_keras_model(model, path: Path) -> None:
    """Write a full float model (architecture + weights) atomically as HDF5."""
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": it reloads reliably
        model.save(tmp, include_optimizer=False)


def save_weights(model, path: Path) -> None:
    """Write a model's weights atomically (QAT models: see quantize.qat.load_qat)."""
    with atomic_path(path) as tmp:
        model.save_weights(tmp)


def _saved_config(path: Path) -> dict:
    """The model config a Keras file stores, read without deserializing anything."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise TflmpError(f"{path} holds weights only, not a model; pass a file saved "
                                 "with model.save()")
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (OSError, KeyError, ValueError) as e:
        raise TflmpError(f"{path} is not a Keras .h5 or .keras model ({e})") from None


def _code_layers(config) -> list[str]:
    """Names of Lambda layers (and layers carrying a serialized function) in a config."""
    found = []
    if isinstance(config, dict):
        cfg = config.get("config")
        if config.get("class_name") == "Lambda" or (
                isinstance(cfg, dict) and isinstance(cfg.get("function"), (list, dict))):
            found.append(f"{config.get('class_name')} '{(cfg or {}).get('name', '?')}'")
        for v in config.values():
            found += _code_layers(v)
    elif isinstance(config, list):
        for v in config:
            found += _code_layers(v)
    return list(dict.fromkeys(found))
