"""Make a trained float Keras model quantization-aware-trainable without changing what it
computes.

TFMOT's ``quantize_model`` rejects or mishandles layers that small-device models are made
of.  :func:`prepare` rebuilds the model graph with meaning-preserving rewrites:

- nested models are flattened into one graph;
- ``Rescaling`` / ``Normalization`` right after the input move out of the model into the
  saved preprocessing (the device applies them to the raw sample anyway);
- ``Conv1D``, ``MaxPooling1D`` and ``AveragePooling1D`` become their 2-D equivalents on a
  (time, 1, channels) view; chains of them stay 2-D, with one reshape at each end;
- activations passed as a keyword that TFMOT rejects (``activation="relu6"``) become
  separate layers;
- ``BatchNormalization`` right after a Dense or convolution is folded into its weights
  (TFMOT leaves BatchNorm after Dense unfolded, which both quantizes badly and makes the
  converter emit per-channel weights).

The rewritten model is checked numerically against the original.  Marking its layers
for QAT is :mod:`tflm_pipeline.quantize.scheme`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import TflmpError
from ..tf_env import load

# Activations TFMOT quantizes when passed as a layer keyword.
_KWARG_ACTIVATIONS = {"linear", "relu", "softmax", "sigmoid", "tanh", "swish"}
_FOLDS_BN = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D")
_ELEMENTWISE = ("Activation", "ReLU", "LeakyReLU", "Dropout", "SpatialDropout1D")
_ONE_D = ("Conv1D", "MaxPooling1D", "AveragePooling1D")


@dataclass
class Prepared:
    model: object  # the rewritten tf_keras model
    changes: list[str] = field(default_factory=list)
    # Preprocessing moved out of the model: its inputs are  x * input_scale + input_offset
    # of the original model's inputs.
    input_scale: np.ndarray | float = 1.0
    input_offset: np.ndarray | float = 0.0

    def inputs_for(self, x: np.ndarray) -> np.ndarray:
        """The original model's input ``x`` as the rewritten model takes it."""
        return (x * np.asarray(self.input_scale, np.float32)
                + np.asarray(self.input_offset, np.float32)).astype(np.float32)


def prepare(model, sample: np.ndarray | None = None) -> Prepared:
    """Rewrite ``model`` for QAT; ``sample`` (a few inputs) checks the rewrite is exact."""
    _, keras, _ = load()
    if not getattr(model, "_is_graph_network", False):
        raise TflmpError(f"model '{model.name}' is a subclassed Keras model; QAT needs a "
                         "Functional or Sequential model")
    flat = _Rebuilder(flatten_only=True).run(model)  # so folds can look across boundaries
    prepared = _Rebuilder().run(flat.model)
    prepared.changes = flat.changes + prepared.changes
    if sample is not None:
        before = np.asarray(model.predict(sample, verbose=0))
        after = np.asarray(prepared.model.predict(prepared.inputs_for(sample), verbose=0))
        err = float(np.max(np.abs(before - after)))
        if err > 1e-3 * max(1.0, float(np.max(np.abs(before)))):
            raise RuntimeError(f"rewriting '{model.name}' for QAT changed its outputs by {err:g}")
    return prepared


def _fold_bn(kind: str, weights: list, use_bias: bool, bn) -> list[np.ndarray]:
    """Kernel and bias of a linear layer with the BatchNormalization after it folded in."""
    kernel = weights[0]
    channels = kernel.shape[2] * kernel.shape[3] if kind == "DepthwiseConv2D" else kernel.shape[-1]
    bias = weights[1] if use_bias else np.zeros(channels, np.float32)
    params = {w.name.split("/")[-1].split(":")[0]: v for w, v in zip(bn.weights, bn.get_weights())}
    mean, var = params["moving_mean"], params["moving_variance"]
    factor = params.get("gamma", np.ones_like(mean)) / np.sqrt(var + bn.epsilon)
    if kind == "DepthwiseConv2D":
        kernel = kernel * factor.reshape(1, 1, kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * factor
    bias = (bias - mean) * factor + params.get("beta", np.zeros_like(mean))
    return [kernel.astype(np.float32), bias.astype(np.float32)]


class _Rebuilder:
    """Walks a functional graph in depth order and builds the rewritten graph."""

    def __init__(self, flatten_only: bool = False):
        self.flatten_only = flatten_only
        self.tf, self.keras, _ = load()
        self.L = self.keras.layers
        self.changes: list[str] = []
        self.flat: dict[int, object] = {}  # id(old tensor) -> new tensor, original shape
        self.as2d: dict[int, object] = {}  # id(old tensor) -> new (batch, T, 1, C) view
        self.folded: set[str] = set()  # BatchNormalization layers already folded
        self.scale: np.ndarray | float = 1.0
        self.offset: np.ndarray | float = 0.0

    def run(self, model) -> Prepared:
        inputs = [self.keras.Input(batch_shape=t.shape, name=f"input_{i}")
                  for i, t in enumerate(model.inputs)]
        outputs = self._graph(model, inputs, top=True)
        rebuilt = self.keras.Model(inputs, outputs, name=model.name)
        return Prepared(rebuilt, self.changes, self.scale, self.offset)

    def _graph(self, model, new_inputs, top=False):
        for old, new in zip(model.inputs, new_inputs):
            self.flat[id(old)] = new
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                layer = node.layer
                if isinstance(layer, self.L.InputLayer):
                    continue
                ins = self._tensors(node.call_args)
                if isinstance(layer, self.keras.Model) and layer._is_graph_network:
                    outs = self._graph(layer, [self._get(t) for t in ins])
                    self.changes.append(f"flattened nested model '{layer.name}' into the graph")
                    self._set(node, outs)
                elif self.flatten_only:
                    args = self.tf.nest.map_structure(
                        lambda t: self._get(t) if any(t is i for i in ins) else t, node.call_args)
                    self._set(node, self._call(type(layer).from_config(layer.get_config()),
                                               None, layer.get_weights(), *args,
                                               **node.call_kwargs))
                elif (top and type(layer).__name__ in ("Rescaling", "Normalization")
                      and len(ins) == 1 and any(ins[0] is t for t in model.inputs)):
                    self._move_to_preprocessing(layer)
                    self._set(node, self._get(ins[0]))
                else:
                    self._layer(layer, node, ins)
        return [self._get(t) for t in model.outputs]

    def _tensors(self, structure) -> list:
        return [t for t in self.tf.nest.flatten(structure)
                if isinstance(t, (self.tf.Tensor,)) or hasattr(t, "_keras_history")]

    def _get(self, old):
        """The new tensor for ``old`` in its original shape (reshaping a 2-D view back)."""
        if id(old) not in self.flat:
            self.flat[id(old)] = self.L.Reshape(tuple(old.shape[1:]))(self.as2d[id(old)])
        return self.flat[id(old)]

    def _get2d(self, old):
        """The (batch, T, 1, C) view of a (batch, T, C) tensor."""
        if id(old) not in self.as2d:
            self.as2d[id(old)] = self.L.Reshape((old.shape[1], 1, old.shape[2]))(self._get(old))
        return self.as2d[id(old)]

    def _only_2d(self, ins) -> bool:
        return bool(ins) and all(id(t) in self.as2d and id(t) not in self.flat for t in ins)

    def _set(self, node, new_outputs, two_d: bool = False):
        for old, new in zip(self.tf.nest.flatten(node.outputs), self.tf.nest.flatten(new_outputs)):
            (self.as2d if two_d else self.flat)[id(old)] = new

    def _layer(self, layer, node, ins):
        kind = type(layer).__name__
        if kind == "BatchNormalization" and layer.name in self.folded:
            two_d = self._only_2d(ins)
            self._set(node, self.as2d[id(ins[0])] if two_d else self._get(ins[0]), two_d)
        elif kind in _ONE_D:
            self._one_d(layer, node, ins[0])
        elif kind in _ELEMENTWISE and self._only_2d(ins):
            new, activation = self._copy(layer)
            self._set(node, self._call(new, activation, layer.get_weights(),
                                       self.as2d[id(ins[0])]), two_d=True)
        elif kind in ("GlobalAveragePooling1D", "GlobalMaxPooling1D") and self._only_2d(ins):
            keepdims = layer.get_config().get("keepdims", False)
            pool = getattr(self.L, kind.replace("1D", "2D"))(name=layer.name)
            out = pool(self.as2d[id(ins[0])])
            if keepdims:
                out = self.L.Reshape(tuple(node.outputs.shape[1:]))(out)
            self._set(node, out)
        else:
            args = self.tf.nest.map_structure(
                lambda t: self._get(t) if any(t is i for i in ins) else t, node.call_args)
            new, activation = self._copy(layer)
            new, weights = self._fold_following_bn(layer, kind, new)
            self._set(node, self._call(new, activation, weights, *args, **node.call_kwargs))

    @staticmethod
    def _call(new, activation, weights, *args, **kwargs):
        out = new(*args, **kwargs)
        new.set_weights(weights)
        return activation(out) if activation is not None else out

    def _copy(self, layer, config=None):
        """A fresh copy of ``layer`` (or of ``config``) with an activation keyword TFMOT
        rejects split into its own layer."""
        config = dict(config or layer.get_config())
        act = config.get("activation")
        name = act if isinstance(act, str) else getattr(act, "__name__", None)
        if act is None or name in _KWARG_ACTIVATIONS:
            return type(layer).from_config(config), None
        config["activation"] = "linear"
        extra = (self.L.ReLU(6.0, name=f"{layer.name}_relu6") if name == "relu6"
                 else self.L.Activation(act, name=f"{layer.name}_{name}"))
        self.changes.append(f"split activation='{name}' of '{layer.name}' into its own layer")
        return type(layer).from_config(config), extra

    def _foldable_bn(self, layer):
        """The BatchNormalization that alone consumes ``layer``'s linear output, if any."""
        if type(layer).__name__ not in _FOLDS_BN:
            return None
        act = layer.get_config().get("activation")
        if (act if isinstance(act, str) else getattr(act, "__name__", "linear")) != "linear":
            return None
        nodes = layer._outbound_nodes
        if len(nodes) != 1 or type(nodes[0].layer).__name__ != "BatchNormalization":
            return None
        bn = nodes[0].layer
        axes = [bn.axis] if isinstance(bn.axis, int) else list(bn.axis)
        rank = len(layer.output_shape)
        return bn if len(axes) == 1 and axes[0] in (-1, rank - 1) else None

    def _fold_following_bn(self, layer, kind: str, new):
        """``new`` (the copy of ``layer``) and its weights, with the BatchNormalization
        that follows ``layer`` folded in when there is one (``new`` then gets a bias)."""
        weights = layer.get_weights()
        bn = self._foldable_bn(layer)
        if bn is None:
            return new, weights
        weights = _fold_bn(kind, weights, layer.use_bias, bn)
        new = type(new).from_config({**new.get_config(), "use_bias": True})
        self.folded.add(bn.name)
        self.changes.append(f"folded BatchNormalization '{bn.name}' into '{layer.name}'")
        return new, weights

    def _one_d(self, layer, node, x_old):
        """Conv1D and 1-D pooling as their 2-D equivalents on the (batch, T, 1, C) view."""
        kind = type(layer).__name__
        c = layer.get_config()
        x = self._get2d(x_old)
        if kind == "Conv1D":
            padding = c["padding"]
            if padding == "causal":
                pad = (c["kernel_size"][0] - 1) * c["dilation_rate"][0]
                x = self.L.ZeroPadding2D(((pad, 0), (0, 0)), name=f"{layer.name}_pad")(x)
                padding = "valid"
            config = {k: c[k] for k in ("name", "filters", "use_bias", "activation", "groups")}
            config.update(kernel_size=(c["kernel_size"][0], 1), strides=(c["strides"][0], 1),
                          dilation_rate=(c["dilation_rate"][0], 1), padding=padding)
            new, activation = self._copy(self.L.Conv2D(1, 1, name=layer.name), config)
            new, weights = self._fold_following_bn(layer, kind, new)
            k = weights[0]
            weights = [k.reshape(k.shape[0], 1, *k.shape[1:]), *weights[1:]]
            out = self._call(new, activation, weights, x)
            self.changes.append(f"rewrote Conv1D '{layer.name}' as Conv2D")
        else:
            pool = self.L.MaxPooling2D if kind == "MaxPooling1D" else self.L.AveragePooling2D
            out = pool(pool_size=(c["pool_size"][0], 1), strides=(c["strides"][0], 1),
                       padding=c["padding"], name=c["name"])(x)
            self.changes.append(f"rewrote {kind} '{layer.name}' as {pool.__name__}")
        self._set(node, out, two_d=True)

    def _move_to_preprocessing(self, layer):
        if type(layer).__name__ == "Rescaling":
            s, o = np.float32(layer.scale), np.float32(layer.offset)
        else:
            mean = np.asarray(layer.mean, np.float32).reshape(-1)
            var = np.asarray(layer.variance, np.float32).reshape(-1)
            s = 1.0 / np.sqrt(np.maximum(var, 1e-12))
            o = -mean * s
        self.scale = np.asarray(self.scale, np.float32) * s
        self.offset = np.asarray(self.offset, np.float32) * s + o
        self.changes.append(f"moved {type(layer).__name__} '{layer.name}' out of the model into "
                            "the preprocessing")
