"""Figures of single test samples and operating points: a gallery of samples drawn by
input kind (images, spectrogram-like audio features, sensor windows, waveforms), and
ROC / precision-recall curves with a threshold marked (matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plots import _pyplot, _save


def plot_gallery(samples: np.ndarray, kind: str, captions: list[str], title: str,
                 path: Path, columns: int = 4, wrong: list[bool] | None = None) -> Path:
    """One panel per raw sample, drawn as ``kind`` (see :func:`~.results.input_kind`),
    with its caption above it (in red where ``wrong``)."""
    samples = np.asarray(samples)
    n = len(samples)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    wide = kind in ("sensor", "waveform", "spectrogram")
    fig, axes = _pyplot().subplots(rows, cols, squeeze=False,
                                   figsize=(cols * (3.2 if wide else 2.3), rows * 2.9))
    for ax in axes.flat[n:]:
        ax.axis("off")
    for i, (ax, sample, caption) in enumerate(zip(axes.flat, samples, captions)):
        _draw(ax, np.asarray(sample), kind)
        ax.set_title(caption, fontsize=7,
                     color="#b22222" if wrong is not None and wrong[i] else "black")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _draw(ax, sample: np.ndarray, kind: str) -> None:
    if kind == "image":
        image = sample.astype(np.float64)
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image)
        ax.set_xticks([])
        ax.set_yticks([])
    elif kind == "spectrogram":
        frames = sample.reshape(sample.shape[0], -1).astype(np.float64)
        ax.imshow(frames.T, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xlabel("frame", fontsize=7)
        ax.set_ylabel("feature", fontsize=7)
        ax.tick_params(labelsize=6)
    else:
        series = (sample.reshape(sample.shape[0], -1) if kind == "sensor"
                  else sample.reshape(-1, 1)).astype(np.float64)
        for c in range(series.shape[1]):
            ax.plot(series[:, c], lw=0.8, label=f"ch {c}")
        if kind == "sensor" and 1 < series.shape[1] <= 6:
            ax.legend(fontsize=5, loc="upper right")
        ax.set_xlabel("time step", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)


def plot_roc_pr(curves: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float,
                title: str, path: Path) -> Path:
    """ROC and precision-recall curves of scores against labels (non-zero = positive) per
    split, each with the point ``score > threshold`` marked."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    fig, (roc, pr) = _pyplot().subplots(1, 2, figsize=(9, 3.8))
    for (split, (scores, y)), style in zip(curves.items(), ("-", "--", ":")):
        scores = np.asarray(scores, np.float64).reshape(-1)
        positive = np.asarray(y).reshape(-1) != 0
        fpr, tpr, _ = roc_curve(positive, scores)
        precision, recall, _ = precision_recall_curve(positive, scores)
        flagged = scores > threshold
        tp, fp = int((flagged & positive).sum()), int((flagged & ~positive).sum())
        point_tpr = tp / max(int(positive.sum()), 1)
        point_fpr = fp / max(int((~positive).sum()), 1)
        point_precision = tp / (tp + fp) if tp + fp else 1.0
        line, = roc.plot(fpr, tpr, ls=style, label=f"{split} (AUC {auc(fpr, tpr):.3f})")
        pr.plot(recall, precision, ls=style, color=line.get_color(),
                label=f"{split} (AP area {auc(recall, precision):.3f})")
        roc.plot([point_fpr], [point_tpr], "o", color=line.get_color(), ms=7, mfc="none")
        pr.plot([point_tpr], [point_precision], "o", color=line.get_color(), ms=7, mfc="none")
    roc.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8)
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    for ax, name in ((roc, "ROC"), (pr, "precision-recall")):
        ax.set_title(f"{name}: {title}; o = threshold {threshold:.4g}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
    return _save(fig, path)
