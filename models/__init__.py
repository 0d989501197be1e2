"""The model zoo: one module per architecture, each with a ``build`` function.

``build_model(name, input_shape, num_classes, **hyper)`` returns an uncompiled
tf_keras model.  Each module's docstring states the task, input shape, parameters and
MACs at its reference shape.
"""

from __future__ import annotations

import importlib

from ..errors import TflmpError

MODELS = ("lenet",)


def build_model(name: str, input_shape, num_classes: int, **hyper):
    if name not in MODELS:
        raise TflmpError(f"unknown model '{name}': choose one of {', '.join(MODELS)}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.build(tuple(input_shape), num_classes, **hyper)
