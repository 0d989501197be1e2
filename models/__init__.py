"""The model zoo: one module per architecture, each with a ``build`` function.

``build_model(name, input_shape, num_classes, **hyper)`` returns an uncompiled
tf_keras model.  Each module's docstring states the task, input shape, parameters and
MACs at its reference shape; a module whose model is not a classifier names its task
in ``TASK``.
"""

from __future__ import annotations

import importlib

from ..errors import TflmpError, first_line

# BatchNormalization momentum of the zoo: moving statistics that settle within a few
# hundred steps, since MCU datasets are small (Keras' 0.99 needs thousands).
BN_MOMENTUM = 0.9

MODELS = ("lenet", "dscnn", "mobilenet_v1", "resnet8", "autoencoder", "cnn1d", "mlp")


def check_model_name(name: str) -> None:
    """A one-line error unless ``name`` is a zoo model (no TensorFlow needed)."""
    if name not in MODELS:
        raise TflmpError(f"unknown model '{name}': choose one of {', '.join(MODELS)}")


def _module(name: str):
    check_model_name(name)
    return importlib.import_module(f"{__name__}.{name}")


def build_model(name: str, input_shape, num_classes: int, **hyper):
    """An uncompiled tf_keras model of the zoo for this input shape and class count."""
    module = _module(name)
    try:
        return module.build(tuple(input_shape), num_classes, **hyper)
    except ValueError as e:  # Keras rejecting the shape: the data does not suit the model
        what = (module.__doc__ or name).strip().splitlines()[0].split(":")[0].split(" (")[0]
        reason = first_line(e)
        raise TflmpError(f"model '{name}' ({what}) cannot take inputs of shape "
                         f"{tuple(input_shape)}: {reason}; choose a model for this data "
                         f"({', '.join(MODELS)})") from None


def task_of(name: str) -> str:
    """'classification', or the task a model module declares (e.g. 'autoencoder')."""
    return getattr(_module(name), "TASK", "classification")
