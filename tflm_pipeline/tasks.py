"""What a model is trained and judged for: classification or anomaly detection with an
autoencoder.  One object per task gives the loss, the checkpoint metric and the metric
that Keras, TFLite and TFLM outputs are all scored with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics


@dataclass(frozen=True)
class Task:
    name: str
    loss: str
    keras_metrics: tuple[str, ...]
    monitor: str  # Keras log key for the best checkpoint and early stopping
    monitor_mode: str  # "max" or "min"
    metric: str  # headline metric in reports and the quantization ledger (higher is better)

    def targets(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """What the model learns to output for inputs ``x`` with labels ``y``."""
        return x.reshape(len(x), -1) if self.name == "autoencoder" else y

    def training_rows(self, y: np.ndarray) -> np.ndarray:
        """Samples to train on: an anomaly detector learns from normal samples only."""
        return y == 0 if self.name == "autoencoder" else np.ones(len(y), bool)

    def score(self, x: np.ndarray, y: np.ndarray, outputs: np.ndarray,
              num_classes: int) -> dict:
        """The task's metrics of ``outputs`` (float, dequantized) for inputs ``x``."""
        if self.name == "classification":
            return metrics.classification(y, outputs, num_classes)
        return metrics.anomaly(x.reshape(len(x), -1), outputs.reshape(len(x), -1), y)


CLASSIFICATION = Task("classification", "sparse_categorical_crossentropy", ("accuracy",),
                      "val_accuracy", "max", "accuracy")
AUTOENCODER = Task("autoencoder", "mse", (), "val_loss", "min", "auc")
TASKS = {t.name: t for t in (CLASSIFICATION, AUTOENCODER)}
