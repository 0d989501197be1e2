"""The training defaults: without --epochs the FAST recipe decides the settings left open
(and the run records it); with --epochs the classic settings stay; QAT waits for PTQ's
verdict only under the recipe."""

import json

import pytest

from conftest import run_cli
from tflm_pipeline.config import CLASSIC, FAST, RunConfig


def test_fast_recipe_fills_what_is_not_given():
    c = RunConfig(model="lenet", dataset="mnist").resolved(54_000, auto_batch=128)
    assert (c.recipe, c.schedule, c.lr, c.batch_size) == ("fast", FAST.schedule, FAST.lr, 128)
    assert c.epochs == FAST.float_epochs(54_000, c.batch_size) >= FAST.min_epochs
    assert (c.qat_epochs, c.qat_if_needed) == (FAST.qat_epochs, True)
    assert c.resolved(54_000, 128) == c  # config.json resolves to itself on --resume
    # a small set: the step budget buys more epochs, never more than max_epochs
    small = RunConfig().resolved(1_258, auto_batch=16)
    assert FAST.min_epochs < small.epochs <= FAST.max_epochs
    assert RunConfig().resolved(60, auto_batch=16).epochs == FAST.max_epochs
    # settings given win; QAT given means QAT runs
    given = RunConfig(schedule="cosine", lr=1e-3, batch_size=64, qat_epochs=2).resolved(
        54_000, 128)
    assert (given.schedule, given.lr, given.batch_size, given.qat_epochs,
            given.qat_if_needed) == ("cosine", 1e-3, 64, 2, False)
    assert RunConfig(lr="auto").resolved(54_000, 128).lr == "auto"


def test_explicit_epochs_keep_the_classic_settings():
    c = RunConfig(epochs=6).resolved(54_000, auto_batch=128)
    assert (c.recipe, c.epochs, c.schedule, c.lr, c.qat_epochs, c.qat_if_needed,
            c.batch_size) == ("classic", 6, "constant", 2e-3, 3, False, None)
    assert (CLASSIC.lr, CLASSIC.schedule, CLASSIC.qat_epochs) == (2e-3, "constant", 3)
    # tflmp tune reads the open settings as the classic ends of its ranges
    assert (RunConfig().classic().epochs, RunConfig().classic().qat_epochs) == (30, 3)


def test_qat_runs_only_for_a_measurable_ptq_loss():
    from tflm_pipeline.quantize.recipe import qat_needed

    # one standard error of a 6,000-sample accuracy of 0.99 is 0.13 pp
    needed, why = qat_needed(0.9900, 0.9893, 6000)
    assert not needed and why.startswith("QAT skipped") and "0.13 pp" in why
    needed, why = qat_needed(0.9900, 0.9850, 6000)
    assert needed and why.startswith("QAT ran") and "0.50 pp" in why
    # a perfect float score on 10 samples: one sample lost (10 pp) is within the error
    assert qat_needed(1.0, 0.95, 10)[0] is False and qat_needed(1.0, 0.7, 10)[0] is True


@pytest.mark.slow
def test_cli_records_the_recipe_and_explicit_epochs_keep_todays_behaviour(tmp_path):
    fast, classic = tmp_path / "fast", tmp_path / "classic"
    p = run_cli("train", "--subset", "60", "--out", fast)
    assert p.returncode == 0, p.stderr
    config = json.loads((fast / "config.json").read_text())
    assert (config["recipe"], config["schedule"], config["lr"], config["qat_if_needed"],
            config["epochs"]) == ("fast", FAST.schedule, FAST.lr, True, FAST.max_epochs)
    training = json.loads((fast / "report.json").read_text())["training"]
    assert training["recipe"] == "fast" and training["schedule"] == FAST.schedule
    assert training["qat_decision"].startswith(("QAT skipped", "QAT ran"))
    assert ("qat" in training) == training["qat_decision"].startswith("QAT ran")
    assert training["qat_decision"] in (fast / "report.md").read_text()

    p = run_cli("train", "--subset", "60", "--epochs", "2", "--out", classic)
    assert p.returncode == 0, p.stderr
    config = json.loads((classic / "config.json").read_text())
    assert (config["recipe"], config["epochs"], config["schedule"], config["lr"],
            config["qat_epochs"], config["qat_if_needed"]) == (
        "classic", 2, "constant", 2e-3, 3, False)
    training = json.loads((classic / "report.json").read_text())["training"]
    assert "qat_decision" not in training and training["qat"]["epochs_run"] == 3
