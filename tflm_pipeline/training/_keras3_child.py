"""The child side of :mod:`tflm_pipeline.training.keras3`: ``python -m
tflm_pipeline.training._keras3_child MODEL OUT_DIR`` loads a Keras 3 file with Keras 3
(in its own process: Keras 3 and tf_keras never share one) and writes what a tf_keras
rebuild needs: ``layers.json`` (each layer's class, config and inputs, in graph order),
``weights.npz``, and ``probe.npz`` (four seeded inputs and the model's outputs for them).  An error is one line on stderr and exit code 3.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _inputs(node_args) -> list:
    """The (layer, node, tensor) references a Keras 3 inbound-node config holds."""
    refs = []
    if isinstance(node_args, dict):
        if node_args.get("class_name") == "__keras_tensor__":
            refs.append(node_args["config"]["keras_history"])
        else:
            for v in node_args.values():
                refs += _inputs(v)
    elif isinstance(node_args, (list, tuple)):
        for v in node_args:
            refs += _inputs(v)
    return refs


def dump(model_path: str, out_dir: str) -> None:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    config = model.get_config()
    kind = type(model).__name__
    layers = []
    if kind == "Sequential":
        previous = None
        for layer_cfg in config["layers"]:
            layer_cfg = dict(layer_cfg)
            layer_cfg["inputs"] = [] if previous is None else [[previous, 0, 0]]
            previous = layer_cfg["config"]["name"]
            layers.append(layer_cfg)
        if layers and layers[0]["class_name"] != "InputLayer":
            shape = list(model.inputs[0].shape)
            layers.insert(0, {"class_name": "InputLayer", "inputs": [],
                              "config": {"name": "input_layer", "batch_shape": shape}})
            layers[1]["inputs"] = [["input_layer", 0, 0]]
        outputs = [[previous, 0, 0]]
    elif kind == "Functional":
        for layer_cfg in config["layers"]:
            layer_cfg = dict(layer_cfg)
            nodes = layer_cfg.get("inbound_nodes") or []
            if len(nodes) > 1:
                raise ValueError(f"layer '{layer_cfg['name']}' is used {len(nodes)} times "
                                 "(shared layers are not rebuilt)")
            layer_cfg["inputs"] = _inputs(nodes[0]["args"]) if nodes else []
            layers.append(layer_cfg)
        outputs = config["output_layers"]
        outputs = [outputs] if outputs and isinstance(outputs[0], str) else outputs
    else:
        raise ValueError(f"a {kind} model (subclassed) has no layer graph to rebuild")
    weights = {}
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            weights[f"{layer.name}::{i}"] = np.asarray(w)
    for layer_cfg in layers:
        layer_cfg.pop("inbound_nodes", None)
        layer_cfg.pop("build_config", None)
    probe = np.random.default_rng(0).normal(size=(4, *model.inputs[0].shape[1:]))
    probe = probe.astype(np.float32)
    reference = np.asarray(model.predict(probe, verbose=0))
    out = Path(out_dir)
    np.savez(out / "probe.npz", x=probe, y=reference)
    (out / "layers.json").write_text(json.dumps({"name": model.name, "layers": layers,
                                                 "outputs": outputs,
                                                 "keras_version": keras.__version__}))
    np.savez(out / "weights.npz", **weights)


def ptq(model_path: str, calibration_path: str, out_path: str) -> None:
    """Post-training full-int8 conversion of the Keras 3 model, calibrated on the
    samples in ``calibration_path`` (.npy), at batch 1, int8 input and output."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    spec = tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32, name="input")
    fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    calibration = np.load(calibration_path)
    converter.representative_dataset = lambda: ([c[None].astype(np.float32)] for c in calibration)
    Path(out_path).write_bytes(converter.convert())


def main(argv: list[str]) -> int:
    try:
        if argv[0] == "ptq":
            ptq(argv[1], argv[2], argv[3])
            return 0
        dump(argv[0], argv[1])
    except Exception as e:  # reported to the parent as one line
        text = str(e).strip().splitlines()
        print(f"{type(e).__name__}: {text[0] if text else ''}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
