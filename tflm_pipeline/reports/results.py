"""The results people look at: per-class precision/recall/F1 of float and the selected
int8 model side by side, galleries of the test samples the int8 model gets wrong or
decides differently from float, and the ROC / PR curves behind a binary classifier's
or an anomaly detector's threshold.

``tflmp train`` computes the per-class metrics once (report.json ``per_class``) and
keeps the per-sample outputs in ``test_predictions.npz`` (:func:`prediction_arrays`);
the reports draw the galleries and curves from that file, so they re-render without a
model or data.
"""

from __future__ import annotations

import numpy as np

from ..errors import TflmpError
from ..record import RunRecord, title
from ..runs import RunFolder
from ..tasks import CLASSIFICATION, Threshold, choose_positive_threshold, verdict_metrics
from . import document as d
from .gallery import plot_gallery, plot_roc_pr

GALLERY_CAP = 16  # samples shown per gallery
GALLERY_TITLES = {"int8_wrong": "test samples the int8 model gets wrong",
                  "disagree": "test samples where int8 and float decide differently"}


def is_binary(task_name: str, num_classes: int) -> bool:
    """A classifier with two classes: class 1 is decided by a threshold on its score."""
    return task_name == CLASSIFICATION.name and num_classes == 2


def input_kind(sample_shape, features: dict | None = None) -> str:
    """How a raw sample is drawn: ``image`` (H, W, 1|3), ``spectrogram`` (audio features),
    ``sensor`` (time steps x channels) or ``waveform`` (one series)."""
    shape = tuple(int(s) for s in sample_shape)
    if features:
        return "waveform" if len([s for s in shape if s > 1]) <= 1 else "spectrogram"
    if len(shape) == 3 and shape[-1] in (1, 3) and min(shape[:2]) >= 4:
        return "image"
    if len(shape) == 2 or (len(shape) == 3 and 1 in shape):
        return "sensor"
    return "waveform"


def decisions(outputs, threshold: float | None = None) -> np.ndarray:
    """The class each row of ``outputs`` decides: the top score, or for two classes with
    a ``threshold``, class 1 when its score is above it (as the firmware decides)."""
    out = np.asarray(outputs)
    out = out.reshape(len(out), -1)
    if threshold is not None and out.shape[1] == 2:
        return (out[:, 1] > threshold).astype(np.int64)
    return out.argmax(axis=1)


def per_class_metrics(y, pred, num_classes: int) -> dict:
    """Precision, recall, F1 and support of each class (lists in class order); a class
    never predicted has precision 0."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, n = precision_recall_fscore_support(
        np.asarray(y).reshape(-1), np.asarray(pred).reshape(-1),
        labels=list(range(num_classes)), zero_division=0)
    return {"precision": [float(v) for v in p], "recall": [float(v) for v in r],
            "f1": [float(v) for v in f], "support": [int(v) for v in n]}


def per_class_record(y_test, outputs: dict[str, np.ndarray], num_classes: int,
                     labels: list[str], threshold: float | None = None) -> dict:
    """report.json ``per_class``: each model's per-class metrics on the test set, of the
    decisions :func:`decisions` makes (at a binary classifier's ``threshold``)."""
    names = list(labels) if len(labels) == num_classes else [str(i) for i in range(num_classes)]
    basis = ("top-class decisions" if threshold is None or num_classes != 2 else
             f"class 1 when its score is above the threshold {threshold:.6g}")
    return {"labels": names, "basis": f"{basis}, test split",
            "models": {key: per_class_metrics(y_test, decisions(out, threshold), num_classes)
                       for key, out in outputs.items()}}


def gallery_picks(y, int8_out, float_out, cap: int = GALLERY_CAP,
                  threshold: float | None = None) -> dict[str, np.ndarray]:
    """Test-sample indices of each gallery, the most confident int8 decisions first."""
    y = np.asarray(y).reshape(-1)
    n = len(y)
    int8_out = np.asarray(int8_out).reshape(n, -1)
    int8_pred, float_pred = decisions(int8_out, threshold), decisions(float_out, threshold)
    confidence = int8_out[np.arange(n), int8_pred]
    picks = {}
    for name, rows in (("int8_wrong", np.flatnonzero(int8_pred != y)),
                       ("disagree", np.flatnonzero(int8_pred != float_pred))):
        order = rows[np.argsort(-confidence[rows], kind="stable")]
        picks[name] = order[:cap]
        picks[f"{name}_total"] = np.int64(len(rows))
    return picks


def prediction_arrays(*, selected: str, y_test, float_test, int8_test, y_val, int8_val,
                      raw_test, input_shape=None, features: dict | None = None,
                      threshold: float | None = None,
                      cap: int = GALLERY_CAP) -> tuple[dict, dict]:
    """(arrays of ``test_predictions.npz``, report.json ``error_gallery``) of a classifier:
    the dequantized outputs of float and the selected int8 model, and the raw test
    samples of both galleries (in the model's ``input_shape`` when they hold as many
    values)."""
    picks = gallery_picks(y_test, int8_test, float_test, cap, threshold)
    raw_test = np.asarray(raw_test)
    if input_shape is not None and raw_test[0].size == int(np.prod(input_shape)):
        raw_test = raw_test.reshape((len(raw_test), *input_shape))
    arrays = {"selected": np.asarray(selected), "y_test": np.asarray(y_test),
              "float_test": np.asarray(float_test, np.float32),
              "int8_test": np.asarray(int8_test, np.float32), "y_val": np.asarray(y_val),
              "int8_val": np.asarray(int8_val, np.float32),
              "input_kind": np.asarray(input_kind(raw_test.shape[1:], features))}
    summary = {"shown_at_most": cap, "input_kind": str(arrays["input_kind"])}
    for name in GALLERY_TITLES:
        arrays[f"{name}_index"] = picks[name]
        arrays[f"{name}_x"] = raw_test[picks[name]]
        summary[name] = {"total": int(picks[f"{name}_total"]), "shown": int(len(picks[name]))}
    return arrays, summary


def positive_threshold(val_scores, y_val, test_scores, y_test,
                       given: float | None) -> dict:
    """report.json ``threshold`` of a binary classifier: chosen on validation (``given``
    None) or given, with its verdicts on the test split."""
    if given is None:
        chosen = choose_positive_threshold(val_scores, y_val)
    else:
        if not 0.0 <= given <= 1.0:
            raise TflmpError(f"--threshold {given:g} is outside 0..1, the range of a binary "
                             "classifier's class-1 score; give a share or 'auto'")
        chosen = Threshold(float(given), "given with --threshold",
                           verdict_metrics(val_scores, y_val, float(given)))
    return {**chosen.to_dict(), "test": verdict_metrics(test_scores, y_test, chosen.value)}


# --- rendering ------------------------------------------------------------------------------

def verdict_table(threshold: dict) -> dict:
    """The operating point's precision, recall, F1 and false alarms per split."""
    splits = [("validation", threshold.get("validation") or {}),
              ("test", threshold.get("test") or {})]
    rows = [[name, d.metric(m.get("precision")), d.metric(m.get("recall")),
             d.metric(m.get("f1")), d.metric(m.get("false_alarm_rate")), m.get("n")]
            for name, m in splits if m]
    return d.table(["split", "precision", "recall", "F1", "false alarms", "samples"], rows,
                   table_id="threshold-table")


def results_section(run: RunFolder, rec: RunRecord) -> dict | None:
    """Per-class metrics, error galleries and (binary) the threshold, for a classifier."""
    if not rec.per_class:
        return None
    arrays = run.predictions()
    blocks = [_per_class_table(rec.per_class)]
    if arrays is not None and "int8_test" in arrays:
        blocks += _gallery_blocks(run, rec, arrays)
        if binary_cut(rec) is not None:
            blocks += _binary_blocks(run, rec, arrays)
    return d.section("results", "Per-class results and errors (test set)", *blocks)


def _per_class_table(per_class: dict) -> dict:
    models = per_class["models"]
    keys = list(models)
    columns = ["class", "support"] + [f"{title(k)} {m}" for k in keys
                                      for m in ("precision", "recall", "F1")]
    support = models[keys[0]]["support"]
    rows = [[label, support[i]] + [d.metric(models[k][m][i]) for k in keys
                                   for m in ("precision", "recall", "f1")]
            for i, label in enumerate(per_class["labels"])]
    return d.table(columns, rows, table_id="per-class-table",
                   caption="precision, recall and F1 of each class, float and int8 side by "
                   f"side ({per_class.get('basis', 'test split')})")


def _gallery_blocks(run: RunFolder, rec: RunRecord, arrays: dict) -> list[dict]:
    labels = (rec.per_class or {}).get("labels") or []
    cut = binary_cut(rec)
    kind = str(arrays.get("input_kind", "waveform"))
    selected = str(arrays.get("selected", rec.selected))
    figures, notes = [], []
    for name, caption in GALLERY_TITLES.items():
        index = arrays[f"{name}_index"]
        total = (rec.error_gallery or {}).get(name, {}).get("total", len(index))
        if not len(index):
            notes.append(f"No {caption}.")
            continue
        y = arrays["y_test"][index]
        path = plot_gallery(arrays[f"{name}_x"], kind, [
            _caption(labels, int(y[i]), arrays["int8_test"][j], arrays["float_test"][j], cut)
            for i, j in enumerate(index)], f"{caption} ({len(index)} of {total})",
            run.file(RunFolder.GALLERIES[name]),
            wrong=list(decisions(arrays["int8_test"][index], cut) != y))
        figures.append(d.figure(f"{caption}: {len(index)} of {total}", path))
    text = (f"Each panel: true label, the {title(selected)} decision with its score, and the "
            "float (Keras) decision; most confident int8 decisions first, in red where "
            "the int8 decision is wrong"
            + ("." if cut is None else f"; class 1 when its score is above {cut:.6g}."))
    return [d.figures(*figures) if figures else None, d.text(" ".join([text, *notes]))]


def binary_cut(rec: RunRecord) -> float | None:
    """The class-1 threshold of a binary classifier's run (None otherwise)."""
    if rec.threshold and is_binary(rec.task, rec.dataset.classes):
        return float(rec.threshold["value"])
    return None


def _caption(labels: list[str], true: int, int8_out, float_out, cut: float | None) -> str:
    def name(i):
        return labels[i] if i < len(labels) else str(i)

    p, f = (int(decisions(np.asarray(o)[None], cut)[0]) for o in (int8_out, float_out))
    return f"true {name(true)}\nint8 {name(p)} {float(int8_out[p]):.2f}\nfloat {name(f)}"


def _binary_blocks(run: RunFolder, rec: RunRecord, arrays: dict) -> list[dict]:
    labels = (rec.per_class or {}).get("labels") or ["0", "1"]
    path = plot_roc_pr({"validation": (arrays["int8_val"][:, 1], arrays["y_val"]),
                        "test": (arrays["int8_test"][:, 1], arrays["y_test"])},
                       rec.threshold["value"], f"{title(rec.selected)}, class {labels[1]}",
                       run.file(RunFolder.ROC_PR))
    return [d.figures(d.figure("ROC and precision-recall curves with the operating point",
                               path)),
            d.text(f"Threshold: class {labels[1]} when its int8 score is above "
                   f"{rec.threshold['value']:.6g} ({rec.threshold['method']}); the firmware "
                   "states it in its settings header as <name>_positive_threshold and its "
                   "Classify() decides with it."),
            verdict_table(rec.threshold)]


def anomaly_curves(run: RunFolder, rec: RunRecord) -> list[dict]:
    """An anomaly detector's ROC / PR figure from the device scores (labels permitting)."""
    arrays = run.predictions()
    if arrays is None or "anomaly_val" not in arrays or rec.threshold is None:
        return []
    curves = {split: (arrays[f"anomaly_{split}"], arrays[f"y_{split}"])
              for split in ("val", "test")}
    curves = {("validation" if k == "val" else k): v for k, v in curves.items()
              if 0 < (np.asarray(v[1]) != 0).sum() < len(v[1])}
    if not curves:
        return []
    path = plot_roc_pr(curves, rec.threshold["value"], f"{title(rec.selected)} anomaly score",
                       run.file(RunFolder.ROC_PR))
    return [d.figures(d.figure("ROC and precision-recall curves with the operating point",
                               path))]


def anomaly_arrays(y_val, val_scores, y_test, test_scores) -> dict:
    """``test_predictions.npz`` of an anomaly detector: the device scores per split."""
    return {"y_val": np.asarray(y_val), "anomaly_val": np.asarray(val_scores, np.float64),
            "y_test": np.asarray(y_test), "anomaly_test": np.asarray(test_scores, np.float64)}

