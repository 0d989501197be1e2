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


def anomaly(x: np.ndarray, reconstruction: np.ndarray, y: np.ndarray) -> dict:
    """Autoencoder anomaly detection: the score of a sample is its reconstruction mean
    squared error; AUC of that score against the labels (1 = anomalous)."""
    from sklearn.metrics import roc_auc_score

    score = np.mean((np.asarray(x, np.float64) - np.asarray(reconstruction, np.float64)) ** 2,
                    axis=1)
    y = np.asarray(y).reshape(-1)
    normal = score[y == 0]
    return {"auc": float(roc_auc_score(y != 0, score)) if 0 < (y != 0).sum() < len(y) else None,
            "mse_normal": float(normal.mean()) if len(normal) else None, "n": int(len(y))}
