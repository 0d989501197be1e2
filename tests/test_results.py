"""The results people look at, fast tier: per-class metrics, the gallery picks and
figures, the binary operating point and where it is stated (settings header)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tflm_pipeline.codegen.settings import write_settings_header
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.record import RunRecord
from tflm_pipeline.reports.gallery import plot_gallery, plot_roc_pr
from tflm_pipeline.reports.results import (decisions, gallery_picks, input_kind,
                                           per_class_metrics, per_class_record,
                                           positive_threshold, prediction_arrays)
from tflm_pipeline.tasks import (AUTOENCODER, Threshold, best_f1_cut, choose_positive_threshold,
                                 verdict_metrics)
from tflm_pipeline.tflite.model_info import read_model


def test_best_f1_cut_separates_and_prefers_the_higher_cut():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    positive = np.array([0, 0, 0, 1, 1, 1], bool)
    assert best_f1_cut(scores, positive) == pytest.approx(0.5)
    # one positive below a negative: the best F1 keeps all positives (cut below 0.25)
    scores = np.array([0.1, 0.25, 0.3, 0.7, 0.8])
    positive = np.array([0, 1, 0, 1, 1], bool)
    cut = best_f1_cut(scores, positive)
    assert verdict_metrics(scores, positive, cut)["f1"] == pytest.approx(
        max(verdict_metrics(scores, positive, c)["f1"] for c in (0.05, 0.2, 0.27, 0.5, 0.75)))
    # the anomaly detector's choice is the same function
    assert AUTOENCODER.choose_threshold(scores, positive.astype(int)).value == cut


def test_positive_threshold_chosen_on_validation_or_given():
    val, y_val = np.array([0.2, 0.4, 0.45, 0.6, 0.9]), np.array([0, 0, 1, 1, 1])
    test, y_test = np.array([0.1, 0.5, 0.95]), np.array([0, 1, 1])
    chosen = positive_threshold(val, y_val, test, y_test, None)
    assert 0.4 < chosen["value"] < 0.45 and chosen["method"].startswith("best F1")
    assert chosen["validation"]["f1"] == 1.0 and chosen["test"] == verdict_metrics(
        test, y_test, chosen["value"])
    given = positive_threshold(val, y_val, test, y_test, 0.7)
    assert given["value"] == 0.7 and given["method"] == "given with --threshold"
    assert given["test"]["recall"] == 0.5
    with pytest.raises(TflmpError, match=r"outside 0\.\.1"):
        positive_threshold(val, y_val, test, y_test, 3.0)
    with pytest.raises(TflmpError, match="needs both classes"):
        choose_positive_threshold(val, np.ones(5, int))
    assert Threshold.from_dict(chosen).value == chosen["value"]


def test_decisions_and_per_class_metrics():
    outputs = np.array([[0.9, 0.1], [0.55, 0.45], [0.3, 0.7], [0.6, 0.4]])
    assert decisions(outputs).tolist() == [0, 0, 1, 0]
    assert decisions(outputs, 0.42).tolist() == [0, 1, 1, 0]
    y = np.array([0, 1, 1, 0])
    m = per_class_metrics(y, decisions(outputs), 2)
    assert m == {"precision": [2 / 3, 1.0], "recall": [1.0, 0.5], "f1": [0.8, 2 / 3],
                 "support": [2, 2]}
    rec = per_class_record(y, {"float": outputs, "ptq_int8_tflm": outputs}, 2, ["no", "yes"],
                           threshold=0.42)
    assert rec["labels"] == ["no", "yes"] and "0.42" in rec["basis"]
    assert rec["models"]["ptq_int8_tflm"]["recall"] == [1.0, 1.0]
    # a class that is never predicted: precision 0, no warning noise
    three = per_class_metrics([0, 1, 2], [0, 0, 0], 3)
    assert three["precision"] == [1 / 3, 0.0, 0.0] and three["support"] == [1, 1, 1]


def test_gallery_picks_wrong_and_disagreeing_samples_most_confident_first():
    y = np.array([0, 1, 2, 2, 1])
    int8 = np.eye(3)[[0, 2, 1, 2, 0]] * np.array([[0.9], [0.6], [0.8], [0.7], [0.95]])
    floats = np.eye(3)[[0, 1, 1, 2, 1]]
    picks = gallery_picks(y, int8, floats, cap=2)
    assert picks["int8_wrong"].tolist() == [4, 2] and picks["int8_wrong_total"] == 3
    assert picks["disagree"].tolist() == [4, 1] and picks["disagree_total"] == 2
    raw = np.arange(5 * 64).reshape(5, 64)
    arrays, summary = prediction_arrays(selected="ptq_int8_tflm", y_test=y, float_test=floats,
                                        int8_test=int8, y_val=y, int8_val=int8, raw_test=raw,
                                        input_shape=(8, 8, 1), cap=2)
    assert arrays["int8_wrong_x"].shape == (2, 8, 8, 1) and str(arrays["input_kind"]) == "image"
    assert np.array_equal(arrays["int8_wrong_x"][0].reshape(-1), raw[4])
    assert summary["int8_wrong"] == {"total": 3, "shown": 2}


def test_input_kinds():
    assert input_kind((8, 8, 1)) == input_kind((32, 32, 3)) == "image"
    assert input_kind((128, 3)) == input_kind((128, 1, 3)) == "sensor"
    assert input_kind((49, 40, 1), {"kind": "mfcc"}) == "spectrogram"
    assert input_kind((16000,)) == input_kind((16000,), {"kind": "raw"}) == "waveform"


def test_gallery_and_curve_figures_are_drawn(tmp_path, rng):
    samples = {"image": rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8),
               "spectrogram": rng.normal(size=(2, 20, 10, 1)),
               "sensor": rng.normal(size=(2, 50, 3)), "waveform": rng.normal(size=(1, 200))}
    for kind, x in samples.items():
        path = plot_gallery(x, kind, [f"true a\nint8 b 0.{i}\nfloat a" for i in range(len(x))],
                            kind, tmp_path / f"{kind}.png")
        image = np.asarray(Image.open(path).convert("L"), np.float64)
        assert image.shape[0] > 100 and image.std() > 5, kind
    y = rng.integers(0, 2, 200)
    scores = np.clip(y * 0.4 + rng.uniform(0, 0.6, 200), 0, 1)
    path = plot_roc_pr({"validation": (scores, y), "test": (scores[::2], y[::2])}, 0.5, "t",
                       tmp_path / "roc.png")
    assert Image.open(path).size[0] > 500


def test_settings_header_states_the_binary_threshold_once(hello_world_int8, tmp_path):
    info = read_model(hello_world_int8)
    chosen = Threshold(0.5078125, "best F1 on the validation split", {})
    text = write_settings_header(info, "hw", tmp_path, preprocessing=None, arena=None,
                                 positive_threshold=chosen).read_text()
    assert text.count("_threshold =") == 1
    assert "static const double hw_positive_threshold = 0.5078125;" in text
    assert "Chosen by tflmp: best F1 on the validation split." in text


def test_record_keeps_per_class_and_gallery(tmp_path):
    from tflm_pipeline.record import (DatasetSummary, Int8Preparation, Ledger, LedgerRow,
                                      ModelFacts, TrainingFacts)

    rec = RunRecord("r", "classification", DatasetSummary("d", 1, 1, 2, 2, [2]),
                    {"float": {"accuracy": 1.0}}, "ptq_int8_tflm", "",
                    Ledger("accuracy", {"float": LedgerRow(1.0)}), Int8Preparation(),
                    ModelFacts("m", 1, 1, "", 1, "", {}, [], {}, {}, {}),
                    TrainingFacts(1, "adam", 0.1), {},
                    per_class={"labels": ["a", "b"], "models": {}},
                    error_gallery={"int8_wrong": {"total": 0, "shown": 0}})
    again = RunRecord.from_dict(rec.to_dict())
    assert again.per_class == rec.per_class and again.error_gallery == rec.error_gallery


def test_anomaly_curves_are_drawn_from_the_saved_device_scores(tmp_path, rng):
    from types import SimpleNamespace

    from tflm_pipeline.reports.results import anomaly_arrays, anomaly_curves
    from tflm_pipeline.runs import RunFolder

    run = RunFolder(tmp_path)
    y = np.repeat([0, 1], 20)
    scores = y + rng.uniform(0, 1.5, 40)
    run.save_predictions(anomaly_arrays(y, scores, y[::2], scores[::2]))
    rec = SimpleNamespace(threshold={"value": 1.0}, selected="qat_int8_tflm")
    blocks = anomaly_curves(run, rec)
    assert len(blocks) == 1 and (tmp_path / RunFolder.ROC_PR).is_file()
    assert np.array_equal(run.predictions()["anomaly_val"], scores)
    # normal samples only: no curve to draw
    run.save_predictions(anomaly_arrays(y * 0, scores, y * 0, scores))
    assert anomaly_curves(run, rec) == []


def test_console_names_the_weakest_class():
    from tflm_pipeline.console import per_class_line

    per_class = {"labels": ["cat", "dog"], "models": {"qat_int8_tflm": {
        "precision": [0.9, 0.5], "recall": [0.8, 0.6], "f1": [0.85, 0.55], "support": [5, 5]}}}
    line = per_class_line(per_class, "qat_int8_tflm", {"int8_wrong": {"total": 3, "shown": 3}})
    assert line == ("per class (QAT int8 (TFLM)): lowest F1 0.550 for 'dog' (precision 0.500, "
                    "recall 0.600); 3 test samples wrong (plots/gallery_int8_wrong.png)")
