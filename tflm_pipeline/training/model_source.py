"""Where a run's Keras model comes from: ``--model`` is a zoo name, a Python file
(``path.py`` or ``path.py:function``) whose function builds a tf_keras model from
``(input_shape, num_classes, **hyper)``, or a saved Keras model (``.h5``, ``.keras`` or
a SavedModel folder) to fine-tune or, with ``--reinit``, to train from scratch.

Transfer learning: ``--freeze N`` or ``--freeze up-to-LAYER`` keeps the first layers'
weights during float training, and a model whose head does not fit the data (another
class count) gets a new Dense head; QAT then fine-tunes the whole model.  A Python file
or model may declare what it is for with a module-level ``TASK`` (``"regression"``...).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import model_name
from ..errors import TflmpError, first_line
from ..runs import RunFolder
from ..tf_env import load
from .keras_io import KERAS_SUFFIXES, load_keras_model

log = logging.getLogger(__name__)
DEFAULT_FUNCTIONS = ("build", "build_model")
# Layers that only apply an activation: a head is the Dense before them.
_ACTIVATIONS = ("Softmax", "Activation", "ReLU", "LeakyReLU")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model``."""

    kind: str  # "zoo", "python" or "keras"
    path: str  # the zoo name or the file/folder
    function: str | None = None  # python: the builder's name (None: build or build_model)

    @property
    def name(self) -> str:
        """A short name for run folders and generated C; a run's own checkpoint
        (``runs/kws/float_best.h5``) keeps that run's model name, not ``float_best``."""
        run = RunFolder.at(Path(self.path).parent) if self.kind == "keras" else None
        if run is not None and Path(self.path).name == RunFolder.FLOAT_MODEL:
            try:
                return parse_model(run.config.model).name
            except TflmpError:  # the run's own model has moved: the file's name will do
                pass
        return model_name(self.text)

    @property
    def text(self) -> str:
        """The spec as ``--model`` takes it, with an absolute path (kept in config.json)."""
        return f"{self.path}:{self.function}" if self.function else self.path


def parse_model(text: str) -> ModelSpec:
    """``text`` as a model spec; checks that files exist (no import, no TensorFlow)."""
    from ..models import MODELS

    if text in MODELS:
        return ModelSpec("zoo", text)
    path, _, function = text.partition(":") if ".py:" in text else (text, "", "")
    p = Path(path)
    if p.suffix == ".py":
        if not p.is_file():
            raise TflmpError(f"model file {p} does not exist; --model takes a zoo name "
                             f"({', '.join(MODELS)}), a .py file or a saved Keras model")
        return ModelSpec("python", str(p.resolve()), function or None)
    if p.suffix in KERAS_SUFFIXES or (p.is_dir() and (p / "saved_model.pb").is_file()):
        if not p.exists():
            raise TflmpError(f"Keras model {p} does not exist")
        return ModelSpec("keras", str(p.resolve()))
    if p.exists():
        raise TflmpError(f"--model {text}: a {p.suffix or 'folder'} is not a model tflmp can "
                         "train: give a zoo name, a .py file, or a .h5/.keras file or SavedModel")
    raise TflmpError(f"unknown model '{text}': choose one of {', '.join(MODELS)}, or give a "
                     ".py file (path.py or path.py:function) or a saved Keras model")


def declared_task(spec: ModelSpec) -> str | None:
    """The task the model declares (zoo ``TASK``, a Python file's ``TASK``), if any."""
    from ..models import task_of

    if spec.kind == "zoo":
        return task_of(spec.path)
    if spec.kind == "python":
        return getattr(_import(spec), "TASK", None)
    return None


def build(spec: ModelSpec, input_shape, num_outputs: int, task: str, *, reinit: bool = False,
          freeze: str | None = None, trust: bool = False, hyper: dict | None = None):
    """The float Keras model to train for data of ``input_shape`` with ``num_outputs``
    classes (or targets)."""
    from ..models import build_model

    _, keras, _ = load()
    if spec.kind == "zoo":
        model = build_model(spec.path, input_shape, num_outputs, task=task, **(hyper or {}))
    elif spec.kind == "python":
        model = _build_python(spec, input_shape, num_outputs, hyper or {})
    else:
        model = load_keras_model(spec.path, trust=trust)
        if reinit:
            model = keras.models.clone_model(model)  # the architecture, fresh weights
            log.info("model: %s re-initialized (trained from scratch)", Path(spec.path).name)
        model = _fit_head(model, input_shape, num_outputs, task)
    if not isinstance(model, keras.Model):
        raise TflmpError(f"{spec.path} gave a {type(model).__name__}, not a tf_keras Model: "
                         "build it with `import tf_keras as keras` (TFMOT needs Keras 2)")
    _check_input(model, input_shape, spec)
    if freeze:
        _freeze(model, freeze)
    return model


def builder_module(spec: ModelSpec):
    """The module whose function builds the model (a zoo module or the user's file), where
    ``tflmp tune`` reads its ``SEARCH_SPACE``; None for a saved Keras model."""
    if spec.kind == "zoo":
        return importlib.import_module(f"{__package__.rpartition('.')[0]}.models.{spec.path}")
    return _import(spec) if spec.kind == "python" else None


def _import(spec: ModelSpec):
    """The user's Python file as a module (their own code: it runs)."""
    path = Path(spec.path)
    name = f"tflmp_user_model_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    load()  # Keras 2 must be in place before the file imports TensorFlow
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise TflmpError(f"importing {path} failed: {type(e).__name__}: {first_line(e)}") from None
    sys.modules[name] = module
    return module


def _build_python(spec: ModelSpec, input_shape, num_outputs: int, hyper: dict):
    module = _import(spec)
    names = [spec.function] if spec.function else list(DEFAULT_FUNCTIONS)
    fn = next((getattr(module, n) for n in names if callable(getattr(module, n, None))), None)
    if fn is None:
        raise TflmpError(f"{spec.path} has no function {' or '.join(names)}; define "
                         f"{names[0]}(input_shape, num_classes, **hyper) returning a model, or "
                         "name it with path.py:function")
    try:
        return fn(tuple(input_shape), num_outputs, **hyper)
    except Exception as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (f" ({Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})"
                 if tb is not None else "")
        raise TflmpError(f"{Path(spec.path).name}:{fn.__name__} failed for inputs of shape "
                         f"{tuple(input_shape)} and {num_outputs} outputs{where}: "
                         f"{type(e).__name__}: {first_line(e)}") from None


def _check_input(model, input_shape, spec: ModelSpec) -> None:
    if len(model.inputs) != 1:
        raise TflmpError(f"{spec.path} has {len(model.inputs)} inputs; tflmp trains "
                         "single-input models")
    want = tuple(model.inputs[0].shape[1:])
    if None in want or want != tuple(input_shape):
        raise TflmpError(f"{Path(spec.path).name} takes inputs of shape {list(want)} but the "
                         f"data gives {list(input_shape)}; build the model for the data's shape "
                         "(a .py builder gets it as input_shape)")


def _fit_head(model, input_shape, num_outputs: int, task: str):
    """A saved model whose output does not fit the data gets a new Dense head."""
    _, keras, _ = load()
    out = model.outputs[0]
    if int(out.shape[-1]) == num_outputs or task == "autoencoder":
        return model
    layer, softmax = model.layers[-1], False
    while type(layer).__name__ in _ACTIVATIONS:
        softmax = softmax or "softmax" in str(layer.get_config())
        layer = layer._inbound_nodes[0].inbound_layers
    if type(layer).__name__ != "Dense":
        raise TflmpError(f"the model outputs {int(out.shape[-1])} values, the data has "
                         f"{num_outputs} classes, and its last layer '{layer.name}' is a "
                         f"{type(layer).__name__}, not a Dense head tflmp can replace")
    softmax = softmax or layer.get_config().get("activation") == "softmax"
    x = keras.layers.Dense(num_outputs, name=f"{layer.name}_new")(layer.input)
    if softmax and task == "classification":
        x = keras.layers.Softmax(name="output")(x)
    log.info("model: new head '%s_new' (%d outputs) in place of '%s' (%d)", layer.name,
             num_outputs, layer.name, int(out.shape[-1]))
    return keras.Model(model.inputs, x, name=model.name)


def _freeze(model, freeze: str) -> None:
    """``N``: the first N layers; ``up-to-LAYER``: every layer up to LAYER."""
    _, keras, _ = load()
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if freeze.startswith("up-to-"):
        name = freeze[len("up-to-"):]
        names = [layer.name for layer in layers]
        if name not in names:
            raise TflmpError(f"--freeze up-to-{name}: the model has no layer '{name}' "
                             f"(layers: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''})")
        count = names.index(name) + 1
    else:
        try:
            count = int(freeze)
        except ValueError:
            raise TflmpError(f"--freeze takes a number of layers or up-to-LAYER, not "
                             f"'{freeze}'") from None
        if not 0 <= count < len(layers):
            raise TflmpError(f"--freeze {count}: the model has {len(layers)} layers; freeze "
                             "fewer than all of them")
    for layer in layers[:count]:
        layer.trainable = False
    log.info("model: %d of %d layers frozen for float training (up to '%s')", count,
             len(layers), layers[count - 1].name if count else "-")
