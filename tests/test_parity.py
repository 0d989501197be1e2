"""The harness: parity ladder, first diverging layer, per-layer error, pytest plugin."""

import json

import numpy as np
import pytest

from conftest import run_cli
from tflm_pipeline.tflite import quant
from tflm_pipeline.tflm import interpreter, parity
from tflm_pipeline.tflite.model_info import read_model


def test_ladder_on_a_run(digits_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run[0], run)
    p = run_cli("verify", run, "--ladder")
    assert p.returncode == 0, p.stderr
    report = json.loads((run / "report.json").read_text())
    rungs = {r["rung"]: r for r in report["parity"]["rungs"]}
    assert set(rungs) == {"keras_float", "keras_qat", "tflite_ref_int8", "tflm_int8"}
    assert rungs["keras_float"]["agreement_with_float"] == 1.0
    selected = report["metrics"]["selected"]
    assert rungs["tflm_int8"]["accuracy"] == report["metrics"][selected]["accuracy"]
    d = report["parity"]["tflm_vs_tflite"]
    assert 0 <= d["bit_exact_share"] <= 1 and d["max_diff"] >= 0
    layers = report["per_layer_error"]
    assert {r["op"] for r in layers} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert all(0 <= r["rmse_over_scale"] < 5 for r in layers)
    assert "parity ladder" in p.stdout and "quantization error" in p.stdout


def test_first_divergence_names_the_op(trained_lenet, digits):
    model = trained_lenet["qat_tflite"]
    info = read_model(model)
    x = quant.quantize(digits.inputs("test")[0][:3], info.inputs[0])
    # identical interpreters up to 127 steps: nothing diverges
    assert parity.first_divergence(model, x, tolerance=127) is None
    # any difference counts: the first op is reported with its statistics
    first = parity.first_divergence(model, x, tolerance=-1)
    assert first["op_index"] == 0 and first["op"] == info.operators[0].name
    assert first["layer"] == "conv1" and first["scale"] > 0


def test_tflite_reference_runs_fixed_batch_models(hello_world_int8):
    x = np.arange(-5, 5, dtype=np.int8).reshape(10, 1)
    ref = parity.tflite_reference(hello_world_int8, x)
    tflm = interpreter.run(hello_world_int8, x, workers=1)[0]
    assert parity.compare_outputs(tflm, ref)["max_diff"] <= 1


def test_pytest_plugin_fixture(tflm, trained_lenet, digits):
    model = trained_lenet["qat_tflite"]
    x = digits.inputs("test")[0][:20]
    goldens = tflm.run(model, x)
    tflm.assert_matches_goldens(model, x, goldens)
    with pytest.raises(AssertionError, match="differs from the golden"):
        tflm.assert_matches_goldens(model, x, goldens.astype(np.int16) + 3, tolerance=1)
    keras_probs = trained_lenet["qat"].predict(x, verbose=0)
    tflm.assert_close_to_float(model, x, keras_probs, atol=0.05, agreement=0.9)
    with pytest.raises(AssertionError, match="from the float reference"):
        tflm.assert_close_to_float(model, x, 1 - keras_probs, atol=0.05)
