"""The model zoo: one module per architecture, each with a ``build`` function.

``build_model(name, input_shape, num_classes, **hyper)`` returns an uncompiled
tf_keras model.  Each module's docstring states the task, input shape, parameters and
MACs at its reference shape; a module whose model is not a classifier names its task
in ``TASK``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

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


def build_model(name: str, input_shape, num_classes: int, *, task: str | None = None,
                **hyper):
    """An uncompiled tf_keras model of the zoo for this input shape and class count.

    ``task`` "regression" turns a classifier into a regressor with ``num_classes``
    linear outputs: the zoo's classifiers end in a Dense named ``logits`` and a softmax,
    which is left off.
    """
    module = _module(name)
    own = getattr(module, "TASK", "classification")
    if task not in (None, own) and not (task == "regression" and own == "classification"):
        raise TflmpError(f"model '{name}' is a {own} model; it cannot be trained for {task}: "
                         f"choose a model for {task} ({', '.join(MODELS)})")
    try:
        model = module.build(tuple(input_shape), num_classes, **hyper)
    except ValueError as e:  # Keras rejecting the shape: the data does not suit the model
        what = (module.__doc__ or name).strip().splitlines()[0].split(":")[0].split(" (")[0]
        reason = first_line(e)
        raise TflmpError(f"model '{name}' ({what}) cannot take inputs of shape "
                         f"{tuple(input_shape)}: {reason}; choose a model for this data "
                         f"({', '.join(MODELS)})") from None
    if task == "regression" and own == "classification":
        from ..tf_env import load

        _, keras, _ = load()
        model = keras.Model(model.inputs, model.get_layer("logits").output, name=model.name)
    return model


def task_of(name: str) -> str:
    """'classification', or the task a model module declares (e.g. 'autoencoder')."""
    return getattr(_module(name), "TASK", "classification")


def task_for(config) -> str:
    """The task a run trains for: the one config.json names (every run since the task
    was recorded), else its zoo model's."""
    return config.task or (task_of(config.model) if config.model in MODELS
                           else "classification")


@dataclass(frozen=True)
class ZooEntry:
    name: str
    task: str
    summary: str  # the module docstring's first sentence
    reference: str  # the reference input shape and classes, as the docstring states them
    params: int
    macs: int

    def to_dict(self) -> dict:
        return dict(vars(self))


def describe(name: str) -> ZooEntry:
    """A zoo model as its module states it: task, what it is for, reference shape,
    parameters and MACs (``tests/test_zoo.py`` checks the figures against the model)."""
    module = _module(name)
    doc = " ".join((module.__doc__ or "").split())
    figures = re.search(r"Reference shape (.*?): ([\d,]+) parameters, ([\d,]+) MACs", doc)
    if figures is None:
        raise TflmpError(f"the zoo model {name} does not state its reference figures")
    summary = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
    return ZooEntry(name, task_of(name), summary.split(": ")[0],
                    figures.group(1), int(figures.group(2).replace(",", "")),
                    int(figures.group(3).replace(",", "")))

