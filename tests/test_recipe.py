"""The int8 choice a run and every --cv fold share (quantize.recipe.select_int8): the
better validation metric in TFLM, ties to QAT, an error metric ranked low-is-better, and
an anomaly detector without validation anomalies ranked by its fallback error."""

from __future__ import annotations

from tflm_pipeline.quantize.recipe import select_int8
from tflm_pipeline.tasks import get_task

PTQ, QAT = "ptq_int8_tflm", "qat_int8_tflm"


def test_the_better_validation_metric_wins_and_a_tie_goes_to_qat():
    task = get_task("classification")
    scores = {PTQ: {"accuracy": 0.1, "val_accuracy": 0.9},
              QAT: {"accuracy": 1.0, "val_accuracy": 0.8}}
    selected, why = select_int8(task, scores, [PTQ, QAT])
    assert selected == PTQ  # validation decides, never the held-out split
    assert why.startswith(f"{PTQ} has the higher validation accuracy in TFLM")
    scores[QAT]["val_accuracy"] = 0.9
    assert select_int8(task, scores, [PTQ, QAT])[0] == QAT
    assert select_int8(task, scores, [PTQ])[0] == PTQ  # no QAT (--qat-epochs 0)


def test_an_error_metric_ranks_lower_is_better():
    task = get_task("regression")
    metric = task.metric
    scores = {PTQ: {f"val_{metric}": 0.2}, QAT: {f"val_{metric}": 0.3}}
    selected, why = select_int8(task, scores, [PTQ, QAT])
    assert selected == PTQ and "lower validation" in why


def test_an_anomaly_detector_without_validation_anomalies_uses_its_fallback():
    task = get_task("autoencoder")
    fallback = task.fallback_metric
    scores = {PTQ: {f"val_{task.metric}": None, f"val_{fallback}": 0.5},
              QAT: {f"val_{task.metric}": None, f"val_{fallback}": 0.7}}
    selected, why = select_int8(task, scores, [PTQ, QAT])
    assert selected == PTQ and f"lower validation {fallback}" in why
    scores[PTQ][f"val_{task.metric}"] = 0.6  # with an AUC, the AUC ranks
    scores[QAT][f"val_{task.metric}"] = 0.9
    assert select_int8(task, scores, [PTQ, QAT])[0] == QAT
