"""QAT: make a trained, prepared float model quantization-aware with TFMOT.

The float model is first rewritten into an equivalent one TFMOT can handle
(:mod:`.rewrite`); layers TFMOT still cannot quantize train in float and are named
(:mod:`.scheme`).  QAT models are saved as weights only: ``.keras`` files of QAT models
do not reload even inside ``quantize_scope``, so a QAT model is rebuilt from its float
source with :func:`quantize` and the weights are loaded into it (:func:`load_qat`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import TflmpError, first_line
from ..tf_env import load
from ..training.keras_io import load_keras_model
from . import rewrite, scheme


@dataclass
class QatModel:
    model: object  # the TFMOT QAT model
    float_layers: list[tuple[str, str]]  # (layer, reason) left in float during QAT


def quantize(model) -> QatModel:
    """Wrap an (already :func:`rewrite.prepare`-d) float model for QAT."""
    _, _, tfmot = load()
    annotated, float_layers = scheme.annotate(model)
    try:
        with scheme.scope():
            qat_model = tfmot.quantization.keras.quantize_apply(annotated,
                                                                scheme=scheme.scheme())
    except (ValueError, RuntimeError, TypeError) as e:
        raise TflmpError(f"TFMOT cannot quantize '{model.name}' for QAT: {first_line(e)}; "
                         "use --qat-epochs 0 for post-training quantization") from None
    return QatModel(qat_model, float_layers)


def load_qat(float_path: Path, weights_path: Path, *, trust: bool = False):
    """Rebuild the QAT model of the float model at ``float_path``; load its weights."""
    prepared = rewrite.prepare(load_keras_model(float_path, trust=trust))
    model = quantize(prepared.model).model
    model.load_weights(weights_path)
    return model
