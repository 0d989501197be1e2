"""What ``verify RUN --data`` measured on new data, as files and report sections: the
per-sample predictions (``predictions.csv``), the per-class table, and one "New data"
section of the run's report per ``verify/<name>/result.json``."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ..artifacts import read_json, write_text
from ..runs import RunFolder
from . import document as d

# what the first column of predictions.csv names, per kind of data
SOURCE_COLUMNS = {"csv_line": "CSV line of the window's first row",
                  "file": "file under the data folder", "index": "index in the .npz array",
                  "case": "case number in the .ts file"}


def write_predictions(path: str | os.PathLike, source_kind: str, sources: list[str],
                      outputs: np.ndarray, labels: list[str], classification: bool,
                      y: np.ndarray | None = None) -> Path:
    """``predictions.csv``, atomically: one row per sample with its source, the predicted
    class and the score of every class (classification), or the output values; with
    labels also the true class."""
    outputs = np.asarray(outputs).reshape(len(sources), -1)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if classification:
        w.writerow([source_kind, *(["true"] if y is not None else []), "predicted",
                    *(f"score_{label}" for label in labels)])
        predicted = outputs.argmax(axis=1)
        for i, source in enumerate(sources):
            w.writerow([source, *([labels[y[i]]] if y is not None else []),
                        labels[predicted[i]], *(f"{v:.6g}" for v in outputs[i])])
    else:
        true = None if y is None else np.asarray(y).reshape(len(sources), -1)
        width = 0 if true is None else true.shape[1]
        w.writerow([source_kind, *(["true"] if width == 1 else
                                   [f"true_{j}" for j in range(width)]),
                    *(f"output_{j}" for j in range(outputs.shape[1]))])
        for i, source in enumerate(sources):
            w.writerow([source, *(f"{v:.6g}" for v in (true[i] if width else ())),
                        *(f"{v:.6g}" for v in outputs[i])])
    return write_text(path, buf.getvalue())


def per_class(confusion: list[list[int]], labels: list[str]) -> list[dict]:
    """Support, recall and precision of every class that occurs or is predicted."""
    c = np.asarray(confusion)
    out = []
    for i, label in enumerate(labels):
        support, predicted, correct = int(c[i].sum()), int(c[:, i].sum()), int(c[i, i])
        if support or predicted:
            out.append({"class": label, "support": support, "predicted": predicted,
                        "recall": correct / support if support else None,
                        "precision": correct / predicted if predicted else None})
    return out


def prediction_counts(outputs: np.ndarray, labels: list[str]) -> dict[str, int]:
    """How many samples each class was predicted for (classes never predicted left out)."""
    counts = np.bincount(np.asarray(outputs).reshape(len(outputs), -1).argmax(axis=1),
                         minlength=len(labels))
    return {label: int(n) for label, n in zip(labels, counts) if n}


def new_data_sections(run: RunFolder) -> list[dict]:
    """One report section per ``verify --data`` result in the run folder."""
    return [_section(read_json(path, "re-run `tflmp verify RUN --data PATH`", default={}))
            for path in run.new_data_results()]


def _section(r: dict) -> dict:
    name = r.get("name", "?")
    key = "".join(c if c.isalnum() else "-" for c in name)
    metrics = r.get("metrics") or {}
    labelled = r.get("labelled")
    cards = [("samples", r.get("samples")),
             ("targets", "given" if labelled else "no labels") if r.get("task") == "regression"
             else ("classes in the data", len(r.get("classes", [])) if labelled else "no labels")]
    cards += [(key, d.metric(metrics[key])) for key in ("accuracy", "auc", "mae")
              if key in metrics]
    rows = [[p["class"], p["support"], p["predicted"], d.metric(p["recall"]),
             d.metric(p["precision"])] for p in r.get("per_class") or []]
    counts = r.get("predicted_counts") or {}
    return d.section(
        f"new-data-{key}", f"New data: {name}", d.cards(cards),
        d.kv([("data", r.get("data")), ("model", r.get("model")),
              ("sha256", r.get("sha256")), ("predictions", r.get("predictions"))],
             f"new-data-{key}-table"),
        d.table(["class", "samples", "predicted", "recall", "precision"], rows,
                table_id=f"new-data-{key}-classes",
                caption="per class, int8 model in TFLM") if rows else None,
        _confusion_table(r, key) if rows else None,
        None if rows or not counts else d.table(
            ["predicted class", "samples"], [[k, v] for k, v in counts.items()],
            table_id=f"new-data-{key}-predicted", caption="no labels: predictions only"),
        d.items(r["notes"]) if r.get("notes") else None)


def _confusion_table(r: dict, key: str) -> dict | None:
    """The confusion matrix, rows of the classes the data holds."""
    labels, confusion = r.get("labels") or [], (r.get("metrics") or {}).get("confusion")
    if not confusion or len(labels) != len(confusion) or len(labels) > 20:
        return None
    rows = [[label, *row] for label, row in zip(labels, confusion) if sum(row)]
    return d.table(["true / predicted", *labels], rows, table_id=f"new-data-{key}-confusion",
                   caption="confusion, int8 model in TFLM")
