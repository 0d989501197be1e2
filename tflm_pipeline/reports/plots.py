"""The figures of reports: training curves, confusion matrices, anomaly scores and
per-layer quantization error (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import atomic_path
from ..runs import RunFolder
from ..training.fit import read_history


def plot_training_curves(histories: dict[str, list[dict]], path: Path,
                         metric: str | None = "accuracy") -> Path:
    """Loss (and ``metric``) per epoch for each phase (float, QAT), train and validation."""
    plt = _pyplot()
    keys = ("loss", metric) if metric else ("loss",)
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8), squeeze=False)
    axes = axes[0]
    offset = 0
    for phase, rows in histories.items():
        if not rows:
            continue
        epochs = [offset + int(r["epoch"]) + 1 for r in rows]
        for ax, key in zip(axes, keys):
            ax.plot(epochs, [r[key] for r in rows], marker="o", ms=3, label=f"{phase} train")
            ax.plot(epochs, [r[f"val_{key}"] for r in rows], marker="o", ms=3, ls="--",
                    label=f"{phase} val")
        offset = epochs[-1]
    for ax, key in zip(axes, keys):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    fig.suptitle("Training curves (QAT epochs follow the float epochs)")
    return _save(fig, path)


def plot_run_curves(run: RunFolder, metric: str | None) -> Path | None:
    """Draw ``plots/training_curves.png`` from a run's history CSVs (None without any)."""
    histories = {"float": read_history(run.history("float")),
                 "QAT": read_history(run.history("qat"))}
    if not any(histories.values()):
        return None
    return plot_training_curves(histories, run.file(RunFolder.TRAINING_CURVES), metric=metric)


def plot_lr_range(sweep, path: Path) -> Path:
    """Loss vs learning rate of a range test (:class:`~tflm_pipeline.training.lr_range.
    LrRange`), raw and smoothed, with the minimum and the chosen rate marked."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.8))
    ax.plot(sweep.lrs, sweep.losses, color="#bbbbbb", lw=0.8, label="batch loss")
    ax.plot(sweep.lrs, sweep.smoothed, color="#3b6ea8", label="smoothed")
    ax.axvline(sweep.min_loss_lr, color="#c0504d", ls=":",
               label=f"minimum {sweep.min_loss_lr:.2g}")
    ax.axvline(sweep.chosen, color="#2e8b57", ls="--", label=f"chosen {sweep.chosen:.2g}")
    ax.set_xscale("log")
    low, high = min(sweep.smoothed), max(sweep.smoothed[: max(len(sweep.smoothed) // 3, 1)])
    ax.set_ylim(low - 0.1 * abs(low), high + 0.5 * (high - low) + 1e-9)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"Learning-rate range test ({sweep.rule})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    _pyplot().close(fig)
    return path


def plot_confusion(matrix: list[list[int]], labels: list, title: str, path: Path) -> Path:
    import numpy as np

    counts = np.asarray(matrix)
    n = len(counts)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = [str(x) for x in labels] if len(labels) == n else [str(i) for i in range(n)]
    side = min(3.0 + 0.22 * n, 9)
    fig, ax = _pyplot().subplots(figsize=(side, side))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if n <= 20:
        for (i, j), count in np.ndenumerate(counts):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "black")
    if n <= 40:
        ax.set_xticks(range(n), names, rotation=90 if max(map(len, names)) > 2 else 0,
                      fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_anomaly(metrics: dict[str, dict], path: Path) -> Path:
    fig, axes = _pyplot().subplots(1, 2, figsize=(9, 3.4))
    names = list(metrics)
    for ax, key, title in ((axes[0], "auc", "AUC (higher is better)"),
                           (axes[1], "mse_normal", "MSE on normal samples")):
        values = [metrics[n].get(key) or 0.0 for n in names]
        ax.barh(names, values, color="#3b6ea8")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticks([])
    return _save(fig, path)


def plot_layer_error(rows: list[dict], path: Path) -> Path:
    names = [f"{r.get('layer', '?')} ({r.get('op', '?')})" for r in rows]
    fig, ax = _pyplot().subplots(figsize=(8, 1.2 + 0.28 * len(rows)))
    ax.barh(names, [r.get("rmse_over_scale") or 0.0 for r in rows], color="#c0504d")
    ax.invert_yaxis()
    ax.set_xlabel("RMSE / output scale (int8 steps)")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
