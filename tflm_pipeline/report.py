"""Report stage: ``report.json`` (the machine-readable source of truth), the training
curves plot, and ``manifest.json`` (what produced the run, and every artifact's hash)."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .artifacts import atomic_path, sha256_file, write_json

SCHEMA_VERSION = 1
_PACKAGES = ("tflmp", "tensorflow", "tensorflow-cpu", "tf-keras",
             "tensorflow-model-optimization", "tflite-micro", "numpy", "scikit-learn")


def package_versions() -> dict:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def write_report(run_dir: Path, report: dict) -> Path:
    return write_json(run_dir / "report.json", {"schema_version": SCHEMA_VERSION, **report})


def plot_training_curves(histories: dict[str, list[dict]], path: Path,
                         metric: str | None = "accuracy") -> Path:
    """Loss (and ``metric``) per epoch for each phase (float, QAT), train and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def write_manifest(run_dir: Path, *, config: dict, data_fingerprint: dict, command: list[str],
                   seed: int) -> Path:
    """Versions, seed, data hashes, command line and sha256 of every artifact."""
    artifacts = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_file() and rel != "manifest.json" and not rel.startswith(
                ("checkpoints/", "tensorboard/")) and not path.name.startswith("."):
            artifacts[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "seed": seed,
        "config": config,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "data_sha256": data_fingerprint,
        "artifacts": artifacts,
    }
    return write_json(run_dir / "manifest.json", manifest)
