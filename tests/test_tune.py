"""``tflmp tune``: the search spaces the zoo declares, the limits and the trials table
(fast); interrupted-trial recovery on a real SQLite study (fast); and, slow, a study on
``digits`` killed mid-trial and resumed, whose best run folder ``convert`` and
``firmware`` take, and two processes sharing one SQLite study."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_cli
from tflm_pipeline.config import RunConfig
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.models import MODELS
from tflm_pipeline.tuning import space as sp
from tflm_pipeline.tuning.results import TrialRow, best_trial, pareto_front, write_trials_csv


# --- search space and limits (no TensorFlow) -------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_every_zoo_model_declares_a_space_its_builder_takes(name):
    module = importlib.import_module(f"tflm_pipeline.models.{name}")
    params = sp.model_space(module)
    assert params and all(p.name.startswith(sp.MODEL_PREFIX) for p in params)
    # the space's two ends become keyword arguments build() accepts
    for pick in (lambda p: p.choices[0] if p.kind == "choice" else p.low,
                 lambda p: p.choices[-1] if p.kind == "choice" else p.high):
        hyper = sp.model_hyper(module, {p.name: pick(p) for p in params})
        accepted = inspect.signature(module.build).parameters
        assert hyper and set(hyper) <= set(accepted), (name, hyper)


def test_cnn1d_knobs_become_a_filter_pyramid():
    from tflm_pipeline.models import cnn1d

    hyper = sp.model_hyper(cnn1d, {"model.depth": 3, "model.base_filters": 8,
                                   "model.kernel_size": 3, "lr": 0.01})
    assert hyper == {"filters": [8, 16, 32], "kernel_size": 3}


@pytest.mark.parametrize("spec, message", [
    ({"int": [4, 1]}, "low <= high"), ({"choice": []}, "non-empty"),
    ({"int": [1, 4], "float": [0, 1]}, "exactly one"), ({"float": [0, 1], "log": True}, "low > 0"),
    ([1, 2], "must be a dict"), ({"int": [1, 4], "step": 0}, "'step'")])
def test_bad_space_entries_are_one_line_errors(spec, message):
    with pytest.raises(TflmpError, match=message):
        sp.parse_param("knob", spec)


def test_training_and_input_knobs_follow_the_config():
    names = [p.name for p in sp.training_space(RunConfig(epochs=9, qat_epochs=0))]
    assert names == ["lr", "batch_size", "optimizer", "epochs"]
    epochs = next(p for p in sp.training_space(RunConfig(epochs=9)) if p.name == "epochs")
    assert (epochs.low, epochs.high) == (3, 9)
    batch = {n: next(p for p in sp.training_space(RunConfig(), n) if p.name == "batch_size")
             for n in (30, 200, None)}  # at least four steps an epoch
    assert (batch[30].choices, batch[200].choices) == ((8,), (8, 16, 32))
    assert batch[None].choices == sp.BATCH_SIZES
    assert sp.input_space(RunConfig(window=64), "csv") and not sp.input_space(RunConfig(), "ts")
    trial = sp.apply_params(RunConfig(window=64, stride=32),
                            {"lr": 0.004, "epochs": 5, "input_scale": 0.5}, {"units": [8]})
    assert (trial.lr, trial.epochs, trial.window, trial.stride) == (0.004, 5, 32, 16)
    assert trial.model_options == {"units": [8]}
    assert RunConfig.from_dict(trial.to_dict()).model_options == {"units": [8]}


def test_limits_name_every_broken_constraint():
    fp = sp.Footprint(flash_bytes=20_000, ram_bytes=6_000, latency_ms=40.0, code_bytes=50_000,
                      board_fits=False, board_reasons=("RAM 1,000 B over",))
    broken = sp.violations(fp, sp.Limits("nano", max_flash=16 * 1024, max_ram=8192,
                                         max_latency_ms=30))
    assert len(broken) == 3 and "16,384" in broken[0] and "RAM 1,000 B over" in broken[1]
    assert sp.violations(dataclasses.replace(fp, board_fits=True), sp.Limits(max_ram=8192)) == []
    assert sp.parse_bytes("16KB", "--max-flash") == 16384
    assert sp.parse_bytes("1.5M", "--max-flash") == 1572864
    with pytest.raises(TflmpError, match="--max-flash takes a size"):
        sp.parse_bytes("lots", "--max-flash")
    with pytest.raises(TflmpError, match="needs --board"):
        sp.Limits(max_latency_ms=5).check()


def _row(n, state, metric=None, flash=None, ram=None, **kw):
    return TrialRow(n, state, metric, None, flash, ram, None, kw.get("reason", ""),
                    kw.get("params", {}))


def test_pareto_front_best_trial_and_table(tmp_path):
    rows = [_row(0, "complete", 0.90, 10_000, 2_000), _row(1, "complete", 0.95, 15_000, 2_000),
            _row(2, "complete", 0.85, 12_000, 3_000),  # dominated by 0
            _row(3, "pruned", None, 30_000, 4_000, reason="infeasible before training: x"),
            _row(4, "complete", 0.95, 14_000, 2_000)]  # ties 1 on metric, smaller
    assert [r.number for r in pareto_front(rows)] == [0, 4]
    assert best_trial(rows).number == 4
    assert best_trial(rows, higher_is_better=False).number == 2
    text = write_trials_csv(rows, tmp_path / "trials.csv").read_text().splitlines()
    assert text[0].startswith("number,state,val_metric") and len(text) == 6
    assert "infeasible before training" in text[4]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_an_interrupted_trial_of_a_dead_process_is_queued_again(tmp_path):
    import optuna

    from tflm_pipeline.tuning import study as st

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = st.open_study(url, "s", "maximize", seed=0)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    trial = study.ask({"x": optuna.distributions.IntDistribution(1, 9)})
    trial.set_user_attr(st.WORKER, f"{st.socket.gethostname()}:{done.stdout.strip()}")
    trial.set_user_attr(st.RUN_DIR, "runs/trial-000")
    live = study.ask({"x": optuna.distributions.IntDistribution(1, 9)})
    live.set_user_attr(st.WORKER, st.worker_id())  # this process: alive, left alone
    assert st.counted(study) == 2
    assert st.recover_interrupted(st.open_study(url, "s", "maximize", seed=0)) == 1
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "WAITING"]
    assert trials[2].system_attrs["fixed_params"] == trials[0].params
    assert trials[2].user_attrs == {st.RETRY_OF: 0, st.RUN_DIR: "runs/trial-000"}
    assert st.counted(study) == 1  # the interrupted trial does not count; its retry will
    assert st.recover_interrupted(study) == 0  # done once


# --- real studies (slow) ---------------------------------------------------------------

_SMALL = {"model.depth": 1, "model.units": 32, "lr": 3e-3, "batch_size": 16,
          "optimizer": "adam", "epochs": 3}
_FIRST = [_SMALL, dict(_SMALL, **{"model.units": 256}),  # too large: pruned before training
          dict(_SMALL, **{"model.depth": 2, "model.units": 128})]
_STUDY = f"""
import sys
from tflm_pipeline import Limits, RunConfig, tune
tune(RunConfig(model="mlp", dataset="digits", epochs=3, qat_epochs=0, seed=1), sys.argv[1],
     trials=3, limits=Limits(max_flash=8192), first_trials={_FIRST!r})
"""


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.slow
def test_a_killed_study_resumes_and_its_best_run_builds(tmp_path):
    """Killed while trial 0 trains; the rerun prunes two too-large models before training,
    requeues trial 0, continues its run folder from the saved epoch, and the best feasible
    run is a folder convert and firmware take."""
    import optuna

    from tflm_pipeline import Limits, RunConfig, tune

    out = tmp_path / "tune"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-c", _STUDY, str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "trials" / "trial-000" / "checkpoints" / "float" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state.exists() and first.poll() is None, "trial 0 saved no epoch before ending"
    first.send_signal(signal.SIGKILL)
    first.wait()

    fit_log, logger = _Lines(), logging.getLogger("tflm_pipeline.training.fit")
    level = logger.level  # the CLI's logging setup may stop propagation: listen directly
    logger.addHandler(fit_log)
    logger.setLevel(logging.INFO)
    try:  # the same call again, in this process
        result = tune(RunConfig(model="mlp", dataset="digits", epochs=3, qat_epochs=0, seed=1),
                      out, trials=3, limits=Limits(max_flash=8192), first_trials=_FIRST)
    finally:
        logger.removeHandler(fit_log)
        logger.setLevel(level)
    assert any(line.startswith(("resuming at epoch 2/3", "resuming at epoch 3/3"))
               for line in fit_log.lines), fit_log.lines
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{out / 'study.db'}")
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {0: "FAIL", 1: "PRUNED", 2: "PRUNED", 3: "COMPLETE"}
    retry = study.get_trials()[3]
    assert retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs["run_dir"] == str(out / "trials" / "trial-000")
    assert "infeasible before training" in study.get_trials()[1].user_attrs["reason"]
    assert result.best.number == 3 and result.trials_run == 3

    table = (out / "trials.csv").read_text().splitlines()
    assert len(table) == 5 and ",pruned," in table[2] and ",complete," in table[4]
    assert (out / "plots" / "pareto.png").stat().st_size > 0
    assert "Pareto front" in (out / "report.html").read_text()
    best = out / "best"
    assert result.best_dir == best
    assert (best / "report.json").is_file() and (best / "model_int8.tflite").stat().st_size <= 8192
    c = run_cli("convert", best, "--c-array", "--out", tmp_path / "c")
    assert c.returncode == 0, c.stderr
    fw = run_cli("firmware", best, "--target", "arduino-nano33ble", "--out", tmp_path / "fw")
    assert fw.returncode == 0, fw.stderr


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(tmp_path):
    """Both workers add trials to one study; numbers are unique, none is lost or doubled.
    (Every trial is infeasible, so none trains: the test is about the shared study.)"""
    import optuna

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["--model", "mlp", "--dataset", "digits", "--epochs", "1", "--qat-epochs", "0",
            "--trials", "8", "--max-flash", "1KB", "--storage", url, "--study", "shared"]
    procs = [subprocess.Popen([sys.executable, "-m", "tflm_pipeline.cli", "tune", *args,
                               "--out", str(tmp_path / name)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in ("a", "b")]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))) and 8 <= len(trials) <= 9
    assert all(t.state.name == "PRUNED" for t in trials)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers
    for log in logs:
        assert "infeasible before training" in log


@pytest.mark.parametrize("args, message", [
    (["--max-latency-ms", "5"], "--max-latency-ms needs --board"),
    (["--max-flash", "lots"], "--max-flash takes a size"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--board", "no-such-board"], "unknown board 'no-such-board'")])
def test_tune_refuses_bad_options_in_one_line(args, message, capsys, tmp_path):
    from tflm_pipeline.cli import main

    assert main(["tune", "--model", "mlp", "--out", str(tmp_path / "t"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tflmp: error:") and message in err[0], err


def test_a_users_builder_declares_its_space_the_same_way():
    import types

    module = types.SimpleNamespace(
        SEARCH_SPACE={"units": {"int": [8, 64], "step": 8}, "act": {"choice": ["relu", "tanh"]}},
        hyper_from_search=lambda p: {"units": p["units"] * 2, "activation": p["act"]})
    assert [p.name for p in sp.model_space(module)] == ["model.units", "model.act"]
    assert sp.model_hyper(module, {"model.units": 16, "model.act": "tanh", "lr": 1e-3}) == {
        "units": 32, "activation": "tanh"}
    assert sp.model_space(types.SimpleNamespace()) == []  # no space: only training knobs
