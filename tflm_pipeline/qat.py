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


def load_float(path: Path):
    """Load a float Keras model saved by the train stage."""
    _, keras, _ = load()
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise TflmpError(f"cannot load Keras model {path}: {e}") from None


def load_qat(float_path: Path, weights_path: Path):
    """Rebuild the QAT model of the float model at ``float_path``; load its weights."""
    prepared = quantizable.prepare(load_float(float_path))
    model = quantize(prepared.model).model
    model.load_weights(weights_path)
    return model
