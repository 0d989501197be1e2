"""Which layers of a prepared model train quantization-aware, and TFMOT's 8-bit scheme
with one transform corrected.

:func:`annotate` marks for QAT only the layers TFMOT can quantize and names those that
stay float, and why (the full-int8 conversion still quantizes them from calibration
data); :func:`scheme` is TFMOT's default scheme without its habit of dropping the weight
quantizer of a layer followed by a separate ReLU.
"""

from __future__ import annotations

from ..errors import first_line
from ..tf_env import load


def annotate(model) -> tuple[object, list[tuple[str, str]]]:
    """Annotate every layer for QAT: TFMOT's 8-bit scheme where it has one, a float
    pass-through elsewhere.  Returns the annotated model and the (layer name, reason)
    pairs that stay float.  Apply it inside :func:`scope`."""
    _, keras, tfmot = load()
    float_layers = []
    passthrough = float_quantize_config()

    def mark(layer):
        clone = type(layer).from_config(layer.get_config())
        if isinstance(layer, keras.layers.InputLayer):
            return clone
        reason = _unsupported_reason(layer)
        if reason:
            float_layers.append((layer.name, reason))
        return tfmot.quantization.keras.quantize_annotate_layer(
            clone, quantize_config=passthrough() if reason else None)

    annotated = keras.models.clone_model(model, clone_function=mark)
    annotated.set_weights(model.get_weights())
    return annotated, float_layers


def scope():
    """Deserialization scope for annotated and QAT models."""
    _, _, tfmot = load()
    cls = float_quantize_config()
    return tfmot.quantization.keras.quantize_scope({cls.__name__: cls})


def scheme():
    """TFMOT's default 8-bit scheme with one transform corrected.

    For a Conv2D, DepthwiseConv2D or Dense followed by a separate ReLU layer, TFMOT's
    LayerReLUQuantize gives the layer a NoOpQuantizeConfig to keep a fake-quant out from
    between the two, which also drops its *weight* quantization: QAT then never sees
    quantized weights and the converter quantizes them afterwards (per-channel for
    Dense).  Here such layers keep their weight quantizer and only lose the output one.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
        default_8bit_quantize_layout_transform as layout,
        default_8bit_quantize_registry as registry,
        default_8bit_quantize_scheme as default_scheme,
        default_8bit_transforms as transforms)
    from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
        model_transformer)

    weights = {"Conv2D": ("kernel", registry.Default8BitConvQuantizeConfig),
               "DepthwiseConv2D": ("depthwise_kernel", registry.Default8BitConvQuantizeConfig),
               "Dense": ("kernel", registry.Default8BitQuantizeConfig)}

    class KeepWeights:
        def replacement(self, match_layer):
            node = match_layer.input_layers[0]
            kind = node.layer["class_name"]
            if kind in weights:
                attr, config = weights[kind]
                node.metadata["quantize_config"] = config([attr], [], False)
            else:
                node.metadata["quantize_config"] = configs.NoOpQuantizeConfig()
            return match_layer

    class ReLU(KeepWeights, transforms.LayerReLUQuantize):
        pass

    class ReLUActivation(KeepWeights, transforms.LayerReluActivationQuantize):
        pass

    class Layout(layout.Default8BitQuantizeLayoutTransform):
        def apply(self, model, layer_quantize_map):
            t = transforms  # TFMOT 0.8.1's default list, in its order, two entries fixed
            chosen = [t.InputLayerQuantize(), t.SeparableConv1DQuantize(),
                      t.SeparableConvQuantize(), t.Conv2DReshapeBatchNormReLUQuantize(),
                      t.Conv2DReshapeBatchNormActivationQuantize(),
                      t.Conv2DBatchNormReLUQuantize(), t.Conv2DBatchNormActivationQuantize(),
                      t.Conv2DReshapeBatchNormQuantize(), t.Conv2DBatchNormQuantize(),
                      t.ConcatTransform6Inputs(), t.ConcatTransform5Inputs(),
                      t.ConcatTransform4Inputs(), t.ConcatTransform3Inputs(),
                      t.ConcatTransform(), t.DenseBatchNormQuantize(),
                      t.DenseBatchNormReLUQuantize(), t.DenseBatchNormActivationQuantize(),
                      ReLU(), ReLUActivation()]
            return model_transformer.ModelTransformer(
                model, chosen, set(layer_quantize_map.keys()), layer_quantize_map).transform()

    class Scheme(default_scheme.Default8BitQuantizeScheme):
        def get_layout_transformer(self):
            return Layout()

    return Scheme()


_float_config = None


def float_quantize_config():
    """A QuantizeConfig that quantizes nothing: the layer trains and runs in float.

    Annotating unsupported layers with it (rather than leaving them bare) keeps TFMOT's
    graph transforms from attaching its own, failing, activation config to them.
    """
    global _float_config
    if _float_config is None:
        _, _, tfmot = load()

        class FloatQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
            def get_weights_and_quantizers(self, layer):
                return []

            def get_activations_and_quantizers(self, layer):
                return []

            def set_quantize_weights(self, layer, quantize_weights):
                pass

            def set_quantize_activations(self, layer, quantize_activations):
                pass

            def get_output_quantizers(self, layer):
                return []

            def get_config(self):
                return {}

        _float_config = FloatQuantizeConfig
    return _float_config


_support_cache: dict = {}


def _unsupported_reason(layer) -> str | None:
    """Why TFMOT cannot quantize ``layer`` (None if it can), probed on a one-layer model."""
    _, keras, tfmot = load()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry)

    config = layer.get_config()
    key = (type(layer).__name__, str(config.get("activation")))
    if key not in _support_cache:
        reason = None
        if not registry.Default8BitQuantizeRegistry().supports(layer):
            reason = f"TFMOT has no 8-bit QAT scheme for {type(layer).__name__}"
        else:
            try:
                shape = layer.input_shape[0] if isinstance(layer.input_shape, list) else layer.input_shape
                probe_in = keras.Input(batch_shape=shape)
                probe = keras.Model(probe_in, type(layer).from_config(config)(probe_in))
                tfmot.quantization.keras.quantize_model(probe)
            except (ValueError, RuntimeError, TypeError) as e:
                reason = first_line(e)[:120]
        _support_cache[key] = reason
    return _support_cache[key]
