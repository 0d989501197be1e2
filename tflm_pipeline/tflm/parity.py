"""The parity ladder: one test set through every stage between Keras and the device.

Rungs: Keras float -> Keras QAT -> TFLite int8 with reference kernels (the desktop
interpreter) -> TFLM (the device's interpreter).  Each rung reports the task metric and
its label agreement with float; TFLM is also compared output by output with the TFLite
rung (max/mean difference in int8 steps, share of bit-exact samples).  When those two
disagree beyond a tolerance, :func:`first_divergence` runs both keeping every tensor and
names the first op whose output differs.  (Which layer quantization itself hurts is
:func:`tflm_pipeline.quantize.int8.quantization_error`.)  The desktop interpreter comes
from TensorFlow, loaded only when a rung needs it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..tasks import Task
from ..tf_env import load, quiet_native_stderr
from ..tflite.model_info import read_model
from ..tflite.quant import dequantize, quantize
from ..tflite.tensor_names import layer_of
from .interpreter import all_tensors, run


def tflite_reference(model: bytes, x_int: np.ndarray, batch: int = 500) -> np.ndarray:
    """Outputs of the desktop TFLite interpreter with its reference kernels, in batches
    when the model allows (a RESHAPE with a fixed batch of 1 does not)."""
    it = _desktop_interpreter(model, preserve=False)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if batch > 1:
        try:
            it.resize_tensor_input(inp["index"], [2, *x_int.shape[1:]])
            it.allocate_tensors()
        except RuntimeError:
            batch = 1
        it = _desktop_interpreter(model, preserve=False)
    results, size = [], None
    for start in range(0, len(x_int), batch):
        chunk = x_int[start:start + batch]
        if size != len(chunk):
            it.resize_tensor_input(inp["index"], [len(chunk), *x_int.shape[1:]])
            it.allocate_tensors()
            size = len(chunk)
        it.set_tensor(inp["index"], chunk)
        it.invoke()
        results.append(it.get_tensor(out["index"]).copy())
    return np.concatenate(results)


def _desktop_interpreter(model: bytes, preserve: bool):
    tf, _, _ = load()
    with warnings.catch_warnings(), quiet_native_stderr():
        warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated"
        it = tf.lite.Interpreter(
            model_content=model,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=preserve)
    it.allocate_tensors()
    return it


def compare_outputs(a: np.ndarray, b: np.ndarray) -> dict:
    """int8 outputs of two interpreters: max/mean |difference| and bit-exact samples."""
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32)).reshape(len(a), -1)
    return {"max_diff": int(diff.max()), "mean_diff": float(diff.mean()),
            "bit_exact_share": float((diff.max(axis=1) == 0).mean())}


def ladder(float_model, qat_model, model: bytes, x_float: np.ndarray, x_int8_input: np.ndarray,
           y: np.ndarray, task: Task, num_classes: int, *, workers: int | None = None) -> dict:
    """Every rung's metric and agreement on the same samples.

    ``x_float`` feeds the float Keras model (its own preprocessing), ``x_int8_input`` the
    QAT model and the int8 models (after any preprocessing moved out of the model).
    """
    info = read_model(model)
    t_in, t_out = info.inputs[0], info.outputs[0]
    q = quantize(x_int8_input.reshape((-1, *t_in.shape[1:])), t_in)
    outputs = {"keras_float": float_model.predict(x_float, batch_size=512, verbose=0)}
    if qat_model is not None:
        outputs["keras_qat"] = qat_model.predict(x_int8_input, batch_size=512, verbose=0)
    ref = tflite_reference(model, q)
    tflm = run(model, q, info=info, workers=workers, label="TFLM ladder")[0]
    outputs["tflite_ref_int8"] = dequantize(ref, t_out)
    outputs["tflm_int8"] = dequantize(tflm, t_out)
    base = np.asarray(outputs["keras_float"]).reshape(len(y), -1)
    rungs = []
    for name, out in outputs.items():
        out = np.asarray(out).reshape(len(y), -1)
        row = {"rung": name,
               task.metric: task.score(x_int8_input, y, out, num_classes)[task.metric]}
        agreement = task.agreement(out, base)
        if agreement is not None:
            row["agreement_with_float"] = agreement
        if name == "tflm_int8":
            row.update({f"vs_tflite_ref_{k}": v for k, v in compare_outputs(tflm, ref).items()})
        rungs.append(row)
    return {"split_size": int(len(y)), "rungs": rungs, "tflm_vs_tflite": compare_outputs(tflm, ref),
            "disagreeing_samples": np.flatnonzero(
                (np.abs(tflm.astype(int) - ref.astype(int)).reshape(len(y), -1).max(1) > 0)
            ).tolist()}


def first_divergence(model: bytes, x_int: np.ndarray, tolerance: int = 0) -> dict | None:
    """Run TFLite (reference kernels) and TFLM keeping every tensor on ``x_int`` samples;
    return the first op, in execution order, whose output differs by more than
    ``tolerance`` int8 steps, with its error statistics (None when all agree)."""
    info = read_model(model)
    tflm = all_tensors(model, x_int, info=info)
    it = _desktop_interpreter(model, preserve=True)
    inp = it.get_input_details()[0]["index"]
    reference = []
    for sample, tflm_tensors in zip(x_int, tflm):
        it.set_tensor(inp, sample[None])
        it.invoke()
        reference.append({t: it.get_tensor(t) for t in tflm_tensors})
    return first_differing_op(info, reference, tflm, tolerance)


def first_differing_op(info, reference: list[dict], other: list[dict],
                       tolerance: int = 0) -> dict | None:
    """The first op, in execution order, whose output tensor differs between two runs of
    the same samples (``[{tensor index: array}, ...]`` each) by more than ``tolerance``
    steps, with its error statistics; None when every op agrees."""
    for ref_tensors, other_tensors in zip(reference, other):
        for op in info.operators:
            for t in op.outputs:
                if t < 0 or t not in ref_tensors or t not in other_tensors:
                    continue
                ref = np.asarray(ref_tensors[t]).astype(np.int64).reshape(-1)
                dev = np.asarray(other_tensors[t]).astype(np.int64).reshape(-1)
                diff = np.abs(ref - dev)
                if diff.max() > tolerance:
                    tensor = info.tensors[t]
                    return {"op_index": op.index, "op": op.name, "tensor": tensor.name,
                            "layer": layer_of(tensor.name),
                            "scale": tensor.scales[0] if tensor.scales else None,
                            "max_diff": int(diff.max()), "mean_diff": float(diff.mean()),
                            "differing_share": float((diff > 0).mean())}
    return None
