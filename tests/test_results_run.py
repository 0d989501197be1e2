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
from tflm_shim import self_test_kit
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
    assert "per class (PTQ int8 (TFLM)): lowest F1 " in p.stdout
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


_DECIDE_MAIN = """// The runner's own decision for each golden input (its file is included: InvokeAndPick
// is internal to it), one class per line.
#include "lenet_runner.cc"
static void print_line(const char*) {}
static uint32_t micros() { return 0; }
alignas(16) static uint8_t arena[lenet::kArenaBytes];
int main() {
  if (!lenet::Begin(arena, sizeof(arena), print_line, micros)) return 2;
  for (int v = 0; v < LENET_GOLDEN_COUNT; ++v) {
    memcpy(lenet::interpreter->input(0)->data.raw, lenet_golden_inputs[v], LENET_INPUT_BYTES);
    printf("%d\\n", lenet::InvokeAndPick(nullptr));
  }
  return 0;
}
"""


def test_binary_runner_decides_at_the_stated_threshold(binary_run, tmp_path):
    # compiled and run on the host against a fake TFLM answering the golden inputs with
    # TFLM's outputs: the C decision is Python's, class 1 iff its score > the threshold
    require_tool("g++")
    from tflm_pipeline import firmware
    from tflm_pipeline.tflite.model_info import read_model

    run, _, rec = binary_run
    out = read_model((run / "model_int8.tflite").read_bytes()).outputs[0]

    def decisions_in_c(threshold, folder):
        project = firmware(run, "esp-idf", tmp_path / folder, threshold=threshold).project
        code = project.out_dir / "main"
        settings = (code / "lenet_model_settings.h").read_text()
        stated = float(re.search(r"lenet_positive_threshold = (\S+);", settings).group(1))
        shim, _, fake = self_test_kit(code, "lenet", "esp-idf", tmp_path / folder)
        main = tmp_path / folder / "decide.cc"
        main.write_text(_DECIDE_MAIN)
        exe = tmp_path / folder / "decide"
        subprocess.run(["g++", "-std=c++11", "-O2", "-DTFLMP_CHECK", "-I", str(code), "-I",
                        str(shim), str(main), str(code / "lenet_model_data.cc"), str(fake),
                        "-o", str(exe)], check=True)
        p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        golden = (code / "lenet_golden.h").read_text()
        q = np.frombuffer(bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", golden.split(
            "lenet_golden_outputs")[1].split("};")[0])), np.int8).reshape(-1, 2)
        scores = (q[:, 1].astype(np.int32) - out.zero_points[0]).astype(np.float32) \
            * np.float32(out.scales[0])
        return [int(v) for v in p.stdout.split()], scores, stated

    ran, scores, stated = decisions_in_c(None, "run")
    assert stated == rec["threshold"]["value"]
    assert ran == [int(s > stated) for s in scores]
    levels = np.unique(scores)
    if len(levels) > 1:  # a threshold between the golden scores: both decisions occur
        between = float((levels[0] + levels[1]) / 2)
        ran, _, stated = decisions_in_c(between, "between")
        assert stated == between and ran == [int(s > between) for s in scores]
        assert set(ran) == {0, 1}


def test_threshold_on_a_multiclass_run_is_refused_before_training(tmp_path, capfd):
    # the entry point in this process (a child spent most of its 12 s importing TensorFlow)
    from tflm_pipeline.cli import main

    capfd.readouterr()
    argv = ["train", "--threshold", "0.5", "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert "--threshold is the operating point of an anomaly detector or a binary " \
        "classifier; this classification run has 10 outputs: drop it" in err
    assert not (tmp_path / "r").exists()
