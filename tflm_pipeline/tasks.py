"""What a model is trained and judged for.  One object per task knows its loss, the
checkpoint metric, what the model learns to output, how Keras, TFLite and TFLM outputs
are scored (the same way for all three), and which output shapes make sense; nothing
else in tflmp compares task names.

Tasks: ``classification``, ``autoencoder`` (anomaly detection: the score of a sample is
its reconstruction error) and ``regression`` (float targets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from math import prod

import numpy as np

from .errors import TflmpError


def error_drop(base: float | None, value: float | None) -> float | None:
    """How much larger an error ``value`` is than the float model's ``base``, in percent
    of it."""
    if base is None or value is None:
        return None
    return round((value - base) / base * 100, 2) if base else round((value - base) * 100, 2)


class Task:
    """The behaviour of one task; subclasses fill in the class attributes."""

    name: str
    loss: str  # Keras loss
    keras_metrics: tuple[str, ...] = ()
    monitor: str  # Keras log key for the best checkpoint and early stopping
    monitor_mode: str  # "max" or "min"
    metric: str  # headline metric in reports and the quantization ledger (higher is better)
    curve_metric: str | None = None  # Keras metric drawn beside the loss in training curves
    firmware_output: str  # what the generated runner returns: "class", "anomaly_score", "values"
    higher_is_better = True  # of ``metric``
    # an error (lower is better) that ranks and compares models when ``metric`` cannot be
    # computed on a split (an anomaly detector's AUC on a split without anomalies)
    fallback_metric: str | None = None
    drop_unit = "pp"  # the unit of :meth:`drop`

    def drop(self, base: float | None, value: float | None) -> float | None:
        """How much worse ``value`` is than the float model's ``base``: percentage points
        of a share (accuracy, AUC); a task whose metric is an error overrides it."""
        if base is None or value is None:
            return None
        return round((base - value) * 100, 2)

    def rank(self, value: float | None) -> float:
        """A sort key: larger is better (missing values rank last)."""
        if value is None:
            return float("-inf")
        return value if self.higher_is_better else -value

    def targets(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """What the model learns to output for inputs ``x`` with labels ``y``."""
        raise NotImplementedError

    def training_rows(self, y: np.ndarray) -> np.ndarray:
        """Boolean mask of the samples to train on."""
        return np.ones(len(y), bool)

    def score(self, x: np.ndarray, y: np.ndarray, outputs: np.ndarray,
              num_classes: int) -> dict:
        """The task's metrics of ``outputs`` (float, dequantized) for inputs ``x``."""
        raise NotImplementedError

    def check_outputs(self, input_shape, output_shape, num_classes: int) -> None:
        """Raise a TflmpError when a model with these shapes cannot do this task."""

    def agreement(self, outputs: np.ndarray, reference: np.ndarray) -> float | None:
        """Share of samples on which ``outputs`` decide as ``reference`` does (None when
        the task has no discrete decision)."""
        return None


class Classification(Task):
    name = "classification"
    loss = "sparse_categorical_crossentropy"
    keras_metrics = ("accuracy",)
    monitor, monitor_mode = "val_accuracy", "max"
    metric = "accuracy"
    curve_metric = "accuracy"
    firmware_output = "class"

    def targets(self, x, y):
        return y

    def score(self, x, y, outputs, num_classes):
        """Accuracy and confusion matrix (rows: true class, columns: predicted)."""
        y_true = np.asarray(y).reshape(-1)
        pred = np.asarray(outputs).reshape(len(y_true), -1).argmax(axis=1)
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(confusion, (y_true, pred), 1)
        return {"accuracy": float((pred == y_true).mean()), "n": int(len(y_true)),
                "confusion": confusion.tolist()}

    def check_outputs(self, input_shape, output_shape, num_classes):
        if prod(output_shape) != num_classes:
            raise TflmpError(f"the model outputs {list(output_shape)} values but the dataset "
                             f"has {num_classes} classes; is it the right model for this "
                             "dataset?")

    def agreement(self, outputs, reference):
        n = len(outputs)
        return float((np.asarray(outputs).reshape(n, -1).argmax(1)
                      == np.asarray(reference).reshape(n, -1).argmax(1)).mean())


@dataclass(frozen=True)
class Threshold:
    """An operating point: a score above ``value`` is positive (an anomaly detector's
    anomaly, a binary classifier's class 1).  ``validation`` holds what it gives on the
    validation split it was chosen on."""

    value: float
    method: str  # how it was chosen, in words
    validation: dict  # precision, recall, f1, false_alarm_rate, n (on the chosen split)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Threshold":
        return cls(float(d["value"]), str(d["method"]), dict(d.get("validation", {})))


def verdict_metrics(scores: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Precision, recall, F1, accuracy and false-alarm rate of the verdicts
    ``score > threshold`` against labels ``y`` (0 normal, anything else anomalous)."""
    anomalous = np.asarray(y).reshape(-1) != 0
    flagged = np.asarray(scores).reshape(-1) > threshold
    tp = int((flagged & anomalous).sum())
    fp = int((flagged & ~anomalous).sum())
    fn = int((~flagged & anomalous).sum())
    normal = int((~anomalous).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else None)
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": float((flagged == anomalous).mean()) if len(flagged) else None,
            "false_alarm_rate": fp / normal if normal else None, "n": int(len(flagged))}


def best_f1_cut(scores: np.ndarray, positive: np.ndarray) -> float:
    """The cut ``c`` whose verdicts ``score > c`` have the best F1 against the boolean
    labels ``positive`` (which hold both classes); cuts lie below, between and at the
    scores, and ties go to the higher cut (fewer false alarms)."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    positive = np.asarray(positive, bool).reshape(-1)
    levels = np.unique(scores)
    cuts = np.concatenate([[np.nextafter(levels[0], -np.inf)],
                           (levels[:-1] + levels[1:]) / 2, levels[-1:]])
    positives, negatives = np.sort(scores[positive]), np.sort(scores[~positive])
    tp = len(positives) - np.searchsorted(positives, cuts, "right")
    fp = len(negatives) - np.searchsorted(negatives, cuts, "right")
    f1 = 2 * tp / (2 * tp + fp + (len(positives) - tp))
    return float(cuts[np.flatnonzero(f1 == f1.max())[-1]])


def choose_positive_threshold(scores: np.ndarray, y: np.ndarray) -> Threshold:
    """A binary classifier's operating point: class 1 when its (dequantized) class-1
    score is above the cut with the best F1 on (scores, labels), a validation split."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    positive = np.asarray(y).reshape(-1) != 0
    if not len(scores) or positive.all() or not positive.any():
        raise TflmpError("choosing a binary classifier's threshold needs both classes in the "
                         "validation data; give --threshold VALUE instead")
    best = best_f1_cut(scores, positive)
    return Threshold(best, "best F1 on the validation split (class-1 score of the int8 model)",
                     verdict_metrics(scores, y, best))


class AnomalyDetection(Task):
    """An autoencoder learns to reconstruct normal samples (label 0); a sample's anomaly
    score is its reconstruction mean squared error, judged by AUC against the labels
    (1 = anomalous).  On the device (and for its threshold) the score is computed from
    the int8 tensors as :meth:`int8_scores` defines it."""

    NORMAL_QUANTILE = 0.99  # without anomalies to tune on: 1 % false alarms on normal data

    name = "autoencoder"
    loss = "mse"
    monitor, monitor_mode = "val_loss", "min"
    metric = "auc"
    fallback_metric = "mse_normal"  # reconstruction error on normal samples
    firmware_output = "anomaly_score"

    def targets(self, x, y):
        return x.reshape(len(x), -1)

    def training_rows(self, y):
        return y == 0

    def score(self, x, y, outputs, num_classes):
        from sklearn.metrics import roc_auc_score

        x = np.asarray(x, np.float64).reshape(len(x), -1)
        error = np.mean((x - np.asarray(outputs, np.float64).reshape(len(x), -1)) ** 2, axis=1)
        y = np.asarray(y).reshape(-1)
        normal = error[y == 0]
        return {"auc": float(roc_auc_score(y != 0, error)) if 0 < (y != 0).sum() < len(y)
                else None,
                "mse_normal": float(normal.mean()) if len(normal) else None, "n": int(len(y))}

    @staticmethod
    def int8_scores(q_in: np.ndarray, q_out: np.ndarray, input_q: tuple[float, int],
                    output_q: tuple[float, int]) -> np.ndarray:
        """The score the generated firmware computes, bit for bit: the mean over elements
        of (dequantized output - dequantized input)², in IEEE double, summed in element
        order (the C loop's order; ``np.cumsum`` accumulates sequentially).  ``input_q``
        and ``output_q`` are (float32 scale, zero point)."""
        n = len(q_in)
        x = ((np.asarray(q_in).reshape(n, -1).astype(np.int64) - input_q[1]).astype(np.float64)
             * np.float64(np.float32(input_q[0])))
        r = ((np.asarray(q_out).reshape(n, -1).astype(np.int64) - output_q[1]).astype(np.float64)
             * np.float64(np.float32(output_q[0])))
        if x.shape != r.shape:
            raise TflmpError(f"an autoencoder must output as many values as it takes; this one "
                             f"maps {x.shape[1]} to {r.shape[1]}")
        d = r - x
        return np.cumsum(d * d, axis=1)[:, -1] / np.float64(x.shape[1])

    def choose_threshold(self, scores: np.ndarray, y: np.ndarray) -> Threshold:
        """The threshold with the best F1 on (scores, labels) when they hold both normal and
        anomalous samples (ties: the higher threshold, fewer false alarms); with normal
        samples only, the 99th percentile of their scores."""
        scores = np.asarray(scores, np.float64).reshape(-1)
        y = np.asarray(y).reshape(-1)
        anomalous = y != 0
        if not len(scores) or anomalous.all():
            raise TflmpError("choosing an anomaly threshold needs normal samples (label 0) in "
                             "the validation data; give --threshold VALUE instead")
        if anomalous.any():
            best = best_f1_cut(scores, anomalous)
            method = "best F1 on the validation split (normal and anomalous samples)"
        else:
            best = float(np.quantile(scores, self.NORMAL_QUANTILE))
            method = (f"{self.NORMAL_QUANTILE:.0%} quantile of the validation split's scores "
                      "(normal samples only)")
        return Threshold(float(best), method, verdict_metrics(scores, y, float(best)))

    def check_outputs(self, input_shape, output_shape, num_classes):
        if prod(output_shape) != prod(input_shape):
            raise TflmpError(f"an autoencoder must output as many values as it takes; this "
                             f"one maps {list(input_shape)} to {list(output_shape)}")


class Regression(Task):
    """One or more float targets per sample, learnt with mean squared error and judged
    by mean absolute error (also RMSE and R²)."""

    name = "regression"
    loss = "mse"
    keras_metrics = ("mae",)
    monitor, monitor_mode = "val_loss", "min"
    metric = "mae"
    curve_metric = "mae"
    firmware_output = "values"
    higher_is_better = False
    drop_unit = "%"

    def drop(self, base, value):
        return error_drop(base, value)

    def targets(self, x, y):
        return np.asarray(y, np.float32).reshape(len(y), -1)

    def score(self, x, y, outputs, num_classes):
        y = np.asarray(y, np.float64).reshape(len(y), -1)
        out = np.asarray(outputs, np.float64).reshape(len(y), -1)
        error = out - y
        spread = float(((y - y.mean(axis=0)) ** 2).sum())
        return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean())),
                "r2": 1.0 - float((error ** 2).sum()) / spread if spread > 0 else None,
                "n": int(len(y))}

    def check_outputs(self, input_shape, output_shape, num_classes):
        if prod(output_shape) != num_classes:
            raise TflmpError(f"the model outputs {list(output_shape)} values but the data has "
                             f"{num_classes} target value(s) per sample; is it the right model?")


CLASSIFICATION = Classification()
AUTOENCODER = AnomalyDetection()
REGRESSION = Regression()
TASKS: dict[str, Task] = {t.name: t for t in (CLASSIFICATION, AUTOENCODER, REGRESSION)}


ALIASES = {"anomaly": AUTOENCODER.name}


def get_task(name: str) -> Task:
    """The task called ``name`` (as report.json and the zoo modules name it; ``anomaly``
    is another name of ``autoencoder``)."""
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise TflmpError(f"unknown task '{name}': tflmp knows {', '.join(TASKS)}")
    return TASKS[name]
