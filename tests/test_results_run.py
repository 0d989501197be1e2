"""The results people look at, from real runs: per-class metrics in report.json, the
error galleries and the ROC/PR figure in the run folder, a binary classifier's
threshold in its settings header and runner, and all of it rendered in headless
Chromium."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

from conftest import require_tool, run_cli
from test_report import _Tables
from tflm_pipeline.reports.results import decisions
from tflm_pipeline.runs import RunFolder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """Digits 0 vs 1 with one label in ten flipped (so the int8 model surely errs), one
    float epoch, no QAT."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("binary")
    d = load_digits()
    keep = d.target < 2
    y = d.target[keep].copy()
    flip = np.random.default_rng(0).choice(len(y), len(y) // 10, replace=False)
    y[flip] = 1 - y[flip]
    np.savez(folder / "zero_one.npz", x=d.images[keep].astype(np.uint8).reshape(-1, 8, 8, 1),
             y=y, labels=np.array(["zero", "one"]))
    run = folder / "run"
    p = run_cli("train", "--dataset", folder / "zero_one.npz", "--epochs", "2",
                "--qat-epochs", "0", "--max-drop", "100", "--out", run)
    assert p.returncode == 0, p.stderr
    return run, p, json.loads((run / "report.json").read_text())


def test_classifier_run_records_per_class_metrics_and_galleries(digits_run):
    run = digits_run[0]
    rec = json.loads((run / "report.json").read_text())
    per_class, selected = rec["per_class"], rec["metrics"]["selected"]
    assert per_class["labels"] == [str(i) for i in range(10)]
    assert set(per_class["models"]) == {"float", selected}
    arrays = RunFolder(run).predictions()
    y = arrays["y_test"]
    for key, name in (("float", "float_test"), (selected, "int8_test")):
        m = per_class["models"][key]
        assert sum(m["support"]) == rec["dataset"]["test"] == len(y)
        recall_3 = float((decisions(arrays[name])[y == 3] == 3).mean())
        assert m["recall"][3] == pytest.approx(recall_3)
    # the selected model's accuracy in the ledger is the support-weighted recall
    int8 = per_class["models"][selected]
    assert np.dot(int8["recall"], int8["support"]) / len(y) == pytest.approx(
        rec["metrics"][selected]["accuracy"])
    wrong = np.flatnonzero(decisions(arrays["int8_test"]) != y)
    gallery = rec["error_gallery"]
    assert gallery["int8_wrong"]["total"] == len(wrong) and gallery["input_kind"] == "image"
    assert set(arrays["int8_wrong_index"]) <= set(wrong)
    for name, png in RunFolder.GALLERIES.items():
        assert (run / png).is_file() == (gallery[name]["shown"] > 0), name
    md = (run / "report.md").read_text()
    assert "| class | support | float (Keras) precision |" in md


def test_binary_run_chooses_a_threshold_and_states_it_in_the_firmware(binary_run, tmp_path):
    run, p, rec = binary_run
    threshold = rec["threshold"]
    assert threshold["method"].startswith("best F1 on the validation split")
    assert 0.0 < threshold["value"] < 1.0 and threshold["test"]["n"] == rec["dataset"]["test"]
    assert f"binary threshold: score > {threshold['value']:.6g}" in p.stdout
    assert rec["per_class"]["labels"] == ["zero", "one"] and "threshold" in rec["per_class"][
        "basis"]
    arrays = RunFolder(run).predictions()
    at_cut = decisions(arrays["int8_test"], threshold["value"])
    assert rec["error_gallery"]["int8_wrong"]["total"] == int((at_cut != arrays["y_test"]).sum())
    assert (run / RunFolder.ROC_PR).is_file() and (run / RunFolder.GALLERIES["int8_wrong"]).is_file()

    out = run_cli("firmware", run, "--target", "esp-idf", "--out", tmp_path / "idf")
    assert out.returncode == 0, out.stderr
    settings = (tmp_path / "idf" / "main" / "lenet_model_settings.h").read_text()
    stated = re.findall(r"static const double lenet_positive_threshold = (\S+);", settings)
    assert [float(v) for v in stated] == [threshold["value"]] and "anomaly" not in settings
    runner = (tmp_path / "idf" / "main" / "lenet_runner.cc").read_text()
    assert "best = lenet_output_dequantize(out[1]) > lenet_positive_threshold ? 1 : 0;" in runner
    given = run_cli("firmware", run, "--target", "esp-idf", "--threshold", "0.25",
                    "--out", tmp_path / "given")
    assert given.returncode == 0, given.stderr
    assert "lenet_positive_threshold = 0.25;" in (
        tmp_path / "given" / "main" / "lenet_model_settings.h").read_text()


def test_results_render_in_headless_chromium(binary_run, tmp_path):
    chromium = require_tool("chromium")
    run, _, rec = binary_run
    p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                        (run / "report.html").as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    dom = p.stdout
    table = _Tables(dom).tables["per-class-table"]
    assert [row[0] for row in table[1:]][:2] == ["zero", "one"], table
    assert table[0][:3] == ["class", "support", "float (Keras) precision"]
    images = {re.search(r'alt="([^"]*)"', img).group(1): img
              for img in re.findall(r"<img\b[^>]*>", dom)}
    shown = [alt for alt in images if alt.startswith("test samples the int8 model gets wrong")]
    assert shown and 'data-loaded="yes"' in images[shown[0]]
    curve = images["ROC and precision-recall curves with the operating point"]
    assert 'data-loaded="yes"' in curve
    assert f"class one when its int8 score is above {rec['threshold']['value']:.6g}" in dom
    assert "threshold-table" in _Tables(dom).tables
