"""Device inputs against training's, end to end, for a run whose samples reach the board
as raw float values (sensor rows, pixels): every test sample's raw values go through the
generated project's C (``<name>_input_from_raw``, what ``Classify()``/``AnomalyScore()``
run) on this host or a Cortex-M4 under QEMU, and the int8 inputs it computes are compared
byte for byte with the ones tflmp's Python computed for training's int8 evaluation; then
both sets of inputs run through TFLM and are scored as the training pipeline scored its
int8 model (accuracy, or an anomaly detector's verdicts against the run's threshold)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.load import load_run_dataset
from ..errors import TflmpError
from ..runs import resolve
from ..tasks import AUTOENCODER, verdict_metrics
from ..tflite.model_info import read_model_bytes, read_model
from ..tflite.quant import quantize, rounding_margin
from ..tflm import interpreter
from .c_program import PLATFORMS
from .raw_input_check import run_raw_inputs


@dataclass
class SensorParity:
    """What :func:`sensor_parity` measured on the test split."""

    samples: int
    values: int  # raw values per sample
    metric: str  # "accuracy" (classes) or "verdict accuracy" (anomaly threshold)
    training: float | None  # the run's int8 figure (report.json)
    python: float  # recomputed from Python's int8 inputs in TFLM
    closest_margin: float  # nearest approach of a value to a rounding boundary, in steps
    platforms: dict = field(default_factory=dict)  # platform -> figures

    @property
    def exact(self) -> bool:
        return all(p["bytes_differing"] == 0 and p["outputs_identical"]
                   for p in self.platforms.values())

    def to_dict(self) -> dict:
        return {"samples": self.samples, "values": self.values, "metric": self.metric,
                "training": self.training, "python": self.python,
                "closest_margin": self.closest_margin, "exact": self.exact,
                "platforms": self.platforms}


def sensor_parity(run_dir: str | Path, code_dir: str | Path, name: str, *,
                  platforms: tuple[str, ...] = PLATFORMS,
                  limit: int | None = None) -> SensorParity:
    """Measure the project in ``code_dir`` (model identifier ``name``), generated from
    the run ``run_dir``, on its test split (the first ``limit`` samples when given)."""
    src = resolve(run_dir)
    run = src.run
    if run is None or not run.has_record:
        raise TflmpError(f"{run_dir} is not a finished tflmp run; pass the run folder")
    dataset = load_run_dataset(run)
    pre = src.preprocessing or dataset.preprocessing
    if pre.features:
        raise TflmpError("this run's samples are features (audio); its device parity is "
                         "the front end's (mcu.frontend_check)")
    model = read_model_bytes(src.model_path)
    info = read_model(model)
    raw, y = dataset.raw("test")
    if limit is not None:
        raw, y = raw[:limit], y[:limit]
    raw = np.asarray(raw, np.float32).reshape(len(raw), -1)
    t_in = info.inputs[0]
    x = pre.apply(raw)
    expected = quantize(x, t_in).reshape(len(raw), -1)
    record = run.record()
    score, training, metric = _scorer(record, info)
    shape = (len(raw), *t_in.shape[1:])
    reference = interpreter.run(model, expected.reshape(shape), info=info)[0]
    result = SensorParity(len(raw), raw.shape[1], metric, training,
                          score(expected, reference, y),
                          float(rounding_margin(x, t_in).min()))
    for platform in platforms:
        device = run_raw_inputs(code_dir, name, raw, platform=platform).from_raw
        differ = device != expected
        outputs = (reference if not differ.any()
                   else interpreter.run(model, device.reshape(shape), info=info)[0])
        result.platforms[platform] = {
            "bytes_differing": int(differ.sum()),
            "samples_differing": int(differ.any(axis=1).sum()),
            "outputs_identical": bool(np.array_equal(outputs, reference)),
            "device": score(device, outputs, y)}
    return result


def _scorer(record, info):
    """(score(inputs, outputs, labels), the run's recorded int8 figure, its name)."""
    t_in, t_out = info.inputs[0], info.outputs[0]
    if record.threshold is not None:
        threshold = float(record.threshold["value"])

        def verdicts(q_in, q_out, y):
            scores = AUTOENCODER.int8_scores(q_in, q_out, (t_in.scales[0], t_in.zero_points[0]),
                                             (t_out.scales[0], t_out.zero_points[0]))
            return verdict_metrics(scores, y, threshold)["accuracy"]

        test = record.threshold.get("test") or {}
        return verdicts, test.get("accuracy"), "verdict accuracy"

    def accuracy(q_in, q_out, y):
        top = np.asarray(q_out).reshape(len(q_out), -1).argmax(axis=1)
        return float((top == np.asarray(y).reshape(-1)).mean())

    row = record.ledger.rows.get(record.selected)
    return accuracy, None if row is None else row.value, "accuracy"
