"""Task metrics computed the same way for Keras, TFLite and TFLM outputs."""

from __future__ import annotations

import numpy as np


def classification(y_true: np.ndarray, scores: np.ndarray, num_classes: int) -> dict:
    """Accuracy and confusion matrix (rows: true class, columns: predicted)."""
    y_true = np.asarray(y_true).reshape(-1)
    pred = np.asarray(scores).reshape(len(y_true), -1).argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, pred), 1)
    return {"accuracy": float((pred == y_true).mean()), "n": int(len(y_true)),
            "confusion": confusion.tolist()}
