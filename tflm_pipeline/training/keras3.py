"""Keras 3 model files (``.keras``, ``.h5`` saved by Keras 3) rebuilt as tf_keras models,
so that TFMOT can fine-tune them quantization-aware.

A child process reads the file with Keras 3 and hands over each layer's class, config,
inputs and weights (:mod:`._keras3_child`); here every layer is made again with tf_keras
from its config (Keras 3-only settings with their default values dropped), wired as the
original graph, and given the original weights, then the rebuilt model is checked to
compute what the file's model computed.  A layer with no tf_keras twin gives one line
naming it and the route that works.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..tf_env import load

log = logging.getLogger(__name__)
CHILD = "tflm_pipeline.training._keras3_child"
# Keras 3 config entries tf_keras does not take, which are safe to drop at these values
_DROPPABLE = {"quantization_config": (None,), "lora_rank": (None, 0), "lora_alpha": (None,),
              "optional": (False,), "synchronized": (False,), "sparse": (False,),
              "ragged": (False,), "input_axes": (None,), "output_axes": (None,)}
_NOT_REBUILT = ("post-train it instead: `tflmp convert MODEL.keras --dataset D` quantizes it "
                "to int8 with Keras 3 (no QAT), and `tflmp verify` scores it in TFLM")


def saved_keras_version(path: Path) -> str | None:
    """The Keras version a ``.keras``/``.h5`` file was saved by (None when unrecorded)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                if "metadata.json" in z.namelist():
                    return json.loads(z.read("metadata.json")).get("keras_version")
            return None
        import h5py

        with h5py.File(path, "r") as f:
            v = f.attrs.get("keras_version")
            return v.decode() if isinstance(v, bytes) else v
    except (OSError, ValueError):
        return None


def is_keras3(path: Path) -> bool:
    version = saved_keras_version(Path(path))
    return bool(version) and version.split(".")[0] == "3"


def rebuild(path: Path):
    """The tf_keras twin of the Keras 3 model in ``path``, with its weights."""
    with tempfile.TemporaryDirectory(prefix="tflmp-keras3-") as tmp:
        proc = subprocess.run([sys.executable, "-m", CHILD, str(path), tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            detail = lines[-1] if lines else f"exit code {proc.returncode}"
            raise TflmpError(f"Keras 3 cannot read {path.name} ({detail}); re-save it with "
                             "Keras 3 and this tflmp, or " + _NOT_REBUILT.replace("MODEL", path.stem))
        dump = json.loads((Path(tmp) / "layers.json").read_text())
        with np.load(Path(tmp) / "weights.npz") as z:
            weights = {k: z[k] for k in z.files}
        with np.load(Path(tmp) / "probe.npz") as z:
            probe, reference = z["x"], z["y"]
    model = _build(dump, weights, path)
    got = np.asarray(model.predict(probe, verbose=0))
    error = float(np.max(np.abs(got - reference))) if got.shape == reference.shape else np.inf
    if not error <= 1e-4 * max(1.0, float(np.max(np.abs(reference)))):
        raise TflmpError(f"{path.name}: the tf_keras rebuild of this Keras 3 model computes "
                         f"other outputs (max difference {error:.3g}); "
                         + _NOT_REBUILT.replace("MODEL", path.stem))
    log.info("model: %s rebuilt from Keras %s as tf_keras (%d layers, same outputs)",
             path.name, dump.get("keras_version", "3"), len(model.layers))
    return model


def post_training_int8(path: Path, calibration: np.ndarray) -> bytes:
    """Full-int8 TFLite bytes of the Keras 3 model in ``path`` converted with Keras 3
    itself (no QAT), for models that cannot be rebuilt as tf_keras."""
    from ..tflite.tensor_names import compact_tensor_names

    with tempfile.TemporaryDirectory(prefix="tflmp-keras3-") as tmp:
        np.save(Path(tmp) / "calibration.npy", np.asarray(calibration, np.float32))
        out = Path(tmp) / "model.tflite"
        proc = subprocess.run([sys.executable, "-m", CHILD, "ptq", str(path),
                               str(Path(tmp) / "calibration.npy"), str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            detail = lines[-1] if lines else f"the converter's process ended with {proc.returncode}"
            raise TflmpError(f"the int8 conversion of the Keras 3 model {path.name} failed: "
                             f"{detail}")
        return compact_tensor_names(out.read_bytes())


def _build(dump: dict, weights: dict, path: Path):
    _, keras, _ = load()
    tensors: dict[str, object] = {}
    inputs = []
    for entry in dump["layers"]:
        cls, cfg = entry["class_name"], dict(entry["config"])
        name = cfg.get("name") or entry.get("name")
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            tensor = keras.Input(batch_shape=tuple(shape), name=name,
                                 dtype=_dtype(cfg.get("dtype")) or "float32")
            inputs.append(tensor)
            tensors[name] = tensor
            continue
        layer = _layer(keras, cls, cfg, name, path)
        args = [tensors[ref[0]] for ref in entry["inputs"]]
        if not args:
            raise TflmpError(f"{path.name}: layer '{name}' has no inputs in the saved graph")
        tensors[name] = layer(args[0] if len(args) == 1 else args)
        own = [weights[f"{name}::{i}"] for i in range(len(layer.get_weights()))
               if f"{name}::{i}" in weights]
        if len(own) != len(layer.get_weights()):
            raise TflmpError(f"{path.name}: layer '{name}' ({cls}) holds {len(own)} weight "
                             f"arrays, its tf_keras twin {len(layer.get_weights())}; "
                             + _NOT_REBUILT.replace("MODEL", path.stem))
        try:
            layer.set_weights(own)
        except ValueError as e:
            raise TflmpError(f"{path.name}: the weights of layer '{name}' ({cls}) do not fit "
                             f"its tf_keras twin ({e}); " + _NOT_REBUILT.replace(
                                 "MODEL", path.stem)) from None
    outputs = [tensors[ref[0]] for ref in dump["outputs"]]
    return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs,
                       name=re.sub(r"\W", "_", dump.get("name") or path.stem))


def _layer(keras, cls: str, cfg: dict, name: str, path: Path):
    """A tf_keras layer from a Keras 3 layer config."""
    if not hasattr(keras.layers, cls):
        raise TflmpError(f"{path.name}: layer '{name}' is a Keras 3 {cls}, which tf_keras "
                         f"(Keras 2, what TFMOT's QAT needs) does not have; "
                         + _NOT_REBUILT.replace("MODEL", path.stem))
    cfg = {k: _plain(v) for k, v in cfg.items()}
    if isinstance(cfg.get("dtype"), dict) or cfg.get("dtype") is None:
        cfg["dtype"] = _dtype(cfg.get("dtype")) or "float32"
    for key in [k for k in cfg if k.endswith("_initializer")]:
        cfg.pop(key)  # the weights are the file's; defaults serve --reinit
    for key, harmless in _DROPPABLE.items():
        if key in cfg and cfg[key] in harmless:
            cfg.pop(key)
    try:
        return getattr(keras.layers, cls).from_config(cfg)
    except (TypeError, ValueError) as e:
        raise TflmpError(f"{path.name}: layer '{name}' ({cls}) has Keras 3 settings tf_keras "
                         f"does not take ({' '.join(str(e).split())[:160]}); "
                         + _NOT_REBUILT.replace("MODEL", path.stem)) from None


def _dtype(value) -> str | None:
    if isinstance(value, dict):
        return (value.get("config") or {}).get("name")
    return value


def _plain(value):
    """Keras 3 serialized objects (regularizers, constraints) as tf_keras reads them."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        return {"class_name": value["class_name"], "config": _plain(value["config"])}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "shared_object_id"}
    return value
