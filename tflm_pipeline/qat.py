"""QAT stage: make a trained float model quantization-aware with TFMOT.

The float model is first rewritten into an equivalent one TFMOT can handle
(:mod:`quantizable`); layers TFMOT still cannot quantize train in float and are named.
QAT models are saved as weights only: ``.keras`` files of QAT models do not reload even
inside ``quantize_scope``, so a QAT model is rebuilt from its float source with
:func:`quantize` and the weights are loaded into it (:func:`load_qat`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import quantizable
from .errors import TflmpError
from .tf_env import load


@dataclass
class QatModel:
    model: object  # the TFMOT QAT model
    float_layers: list[tuple[str, str]]  # (layer, reason) left in float during QAT


def quantize(model) -> QatModel:
    """Wrap an (already :func:`quantizable.prepare`-d) float model for QAT."""
    _, _, tfmot = load()
    annotated, float_layers = quantizable.annotate(model)
    try:
        with quantizable.scope():
            qat_model = tfmot.quantization.keras.quantize_apply(annotated,
                                                                scheme=quantizable.scheme())
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TflmpError(f"TFMOT cannot quantize '{model.name}' for QAT: {first}; "
                         "use --qat-epochs 0 for post-training quantization") from None
    return QatModel(qat_model, float_layers)


def load_float(path: Path, *, trust: bool = False):
    """Load a float Keras model (``.h5`` or ``.keras``).

    Loading runs code stored in the file for ``Lambda`` layers (marshalled Python
    bytecode in ``.h5``): a model holding one is refused unless ``trust`` is given.
    """
    _, keras, _ = load()
    if not trust:
        unsafe = _code_layers(_saved_config(Path(path)))
        if unsafe:
            raise TflmpError(f"{path} contains layers that run code stored in the file "
                             f"({', '.join(unsafe)}); load it only if you trust its source, "
                             "with --trust-model")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not trust)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TflmpError(f"cannot load Keras model {path}: {first}") from None


def _saved_config(path: Path) -> dict:
    """The model config a Keras file stores, read without deserializing anything."""
    import json
    import zipfile

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


def load_qat(float_path: Path, weights_path: Path):
    """Rebuild the QAT model of the float model at ``float_path``; load its weights."""
    prepared = quantizable.prepare(load_float(float_path))
    model = quantize(prepared.model).model
    model.load_weights(weights_path)
    return model
