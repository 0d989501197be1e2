"""The harness: a model's task metrics over dataset splits, computed in TFLM.

This is the device-emulating measurement every accuracy figure of tflmp comes from:
float inputs are quantized exactly as TFLite does, each sample is invoked in the TFLM
interpreter (child processes, all cores), and the dequantized outputs are scored by the
run's :class:`~tflm_pipeline.tasks.Task`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import TflmpError
from ..tasks import AUTOENCODER, Task, Threshold
from ..tflite.model_info import ModelInfo, read_model
from ..tflite.quant import dequantize, quantize
from .interpreter import ArenaSize, find_arena_size, run


@dataclass(frozen=True)
class Evaluation:
    """The smallest working host arena and the task's metrics per split."""

    arena: ArenaSize
    scores: dict[str, dict]  # split name -> the task's metrics
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # split -> dequantized outputs

    def __getitem__(self, split: str) -> dict:
        return self.scores[split]


def evaluate(model: bytes, task: Task, splits: dict[str, tuple[np.ndarray, np.ndarray]],
             num_classes: int, *, info: ModelInfo | None = None, workers: int | None = None,
             label: str = "TFLM") -> Evaluation:
    """The task's metrics of ``model`` in TFLM on each split of float inputs.

    All splits run in one pass over the CPU cores; the smallest working arena is
    measured first, after the model and the data are checked against each other.
    """
    info = info or read_model(model)
    check_model_for(info, task, num_classes)
    arena, outputs = predict(model, np.concatenate([x for x, _ in splits.values()]),
                             info=info, workers=workers, label=label)
    scores, per_split, start = {}, {}, 0
    for name, (x, y) in splits.items():
        per_split[name] = outputs[start:start + len(x)]
        scores[name] = task.score(x, y, per_split[name], num_classes)
        start += len(x)
    return Evaluation(arena, scores, per_split)


def predict(model: bytes, x: np.ndarray, *, info: ModelInfo | None = None,
            workers: int | None = None, label: str = "TFLM") -> tuple[ArenaSize, np.ndarray]:
    """The smallest working host arena and the dequantized outputs of ``model`` in TFLM
    on float inputs ``x``."""
    info = info or read_model(model)
    check_input_shape(info, x.shape[1:])
    arena = find_arena_size(model, info=info)
    x = x.reshape((-1, *info.inputs[0].shape[1:]))
    out = run(model, quantize(x, info.inputs[0]), info=info, arena_size=arena.bytes,
              workers=workers, label=label)[0]
    return arena, dequantize(out, info.outputs[0])


def anomaly_scores(model: bytes, x: np.ndarray, *, info: ModelInfo | None = None,
                   workers: int | None = None, label: str = "TFLM anomaly scores") -> np.ndarray:
    """The anomaly score of each float input ``x`` as the generated firmware computes it
    from the int8 tensors TFLM gives (:meth:`AnomalyDetection.int8_scores`)."""
    info = info or read_model(model)
    check_input_shape(info, x.shape[1:])
    t_in, t_out = info.inputs[0], info.outputs[0]
    q_in = quantize(x.reshape((-1, *t_in.shape[1:])), t_in)
    q_out = run(model, q_in, info=info, workers=workers, label=label)[0]
    return AUTOENCODER.int8_scores(q_in, q_out, (t_in.scales[0], t_in.zero_points[0]),
                                   (t_out.scales[0], t_out.zero_points[0]))


def anomaly_threshold(model: bytes, x: np.ndarray, y: np.ndarray, *,
                      info: ModelInfo | None = None, workers: int | None = None) -> Threshold:
    """The threshold chosen on (``x``, ``y``) — a validation split — from the scores the
    device computes (:meth:`AnomalyDetection.choose_threshold`)."""
    scores = anomaly_scores(model, x, info=info, workers=workers,
                            label="TFLM anomaly threshold")
    return AUTOENCODER.choose_threshold(scores, y)


def check_model_for(info: ModelInfo, task: Task, num_classes: int) -> None:
    """One input and one output, shaped as ``task`` needs them."""
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise TflmpError(f"the model has {len(info.inputs)} inputs and {len(info.outputs)} "
                         f"outputs; {task.name} needs one of each")
    task.check_outputs(info.inputs[0].shape, info.outputs[0].shape, num_classes)


def check_input_shape(info: ModelInfo, sample_shape) -> None:
    """The data's samples hold as many values as the model's input."""
    want = tuple(info.inputs[0].shape[1:])
    if int(np.prod(want)) != int(np.prod(sample_shape)):
        raise TflmpError(f"the model expects inputs of shape {list(want)} but the data gives "
                         f"{list(sample_shape)}; pass the dataset the model was trained on")
