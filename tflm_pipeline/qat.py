"""QAT stage: wrap a float model for quantization-aware training with TFMOT.

QAT models are saved as weights only: ``.keras`` files of QAT models do not reload even
inside ``quantize_scope``, so a QAT model is rebuilt from its float source with
:func:`quantize` and the weights are loaded into it (:func:`load_qat`).
"""

from __future__ import annotations

from pathlib import Path

from .errors import TflmpError
from .tf_env import load


def quantize(float_model):
    """``tfmot.quantization.keras.quantize_model`` with a clear error for unsupported layers."""
    _, _, tfmot = load()
    try:
        return tfmot.quantization.keras.quantize_model(float_model)
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TflmpError(f"TFMOT cannot quantize '{float_model.name}' for QAT: {first}; "
                         "use --qat-epochs 0 for post-training quantization") from None


def load_float(path: Path):
    """Load a float Keras model saved by the train stage."""
    _, keras, _ = load()
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise TflmpError(f"cannot load Keras model {path}: {e}") from None


def load_qat(float_path: Path, weights_path: Path):
    """Rebuild the QAT model of ``float_path`` and load its trained weights."""
    model = quantize(load_float(float_path))
    model.load_weights(weights_path)
    return model
