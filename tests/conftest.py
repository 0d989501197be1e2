"""Shared fixtures: real data from ../shared, a small trained model, toolchain lookup.

Tests that train a model or build TFLM are marked ``slow``: explicitly, or because they
use one of the training fixtures below (``SLOW_FIXTURES``).  ``pytest -m "not slow"`` is
the fast tier for the edit loop; CI runs everything.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TFLMP_SHARED", REPO.parent / "shared"))
# fixtures that train a model: every test using one (directly or not) is slow
SLOW_FIXTURES = {"digits_run", "digits_ptq_run", "trained_lenet", "autoencoder_run",
                 "single_run"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model or builds TFLM; the fast tier "
                            "is pytest -m \"not slow\"")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _package_logging():
    """A test that runs the CLI in-process installs its console logging (propagation
    off); undo it, so pytest's log capture sees the package's messages in later tests."""
    yield
    logger = logging.getLogger("tflm_pipeline")
    logger.propagate = True
    for handler in [h for h in logger.handlers if type(h).__name__ == "_ClickHandler"]:
        logger.removeHandler(handler)


def shared(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need the shared data folder beside the repo "
                    "(or TFLMP_SHARED pointing at it)")
    return path


def require_tool(name: str) -> str:
    """Path of a command-line tool; skip without it, unless CI demands every toolchain."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("TFLMP_REQUIRE_TOOLCHAINS") == "1":
            pytest.fail(f"{name} is required (TFLMP_REQUIRE_TOOLCHAINS=1) but not installed")
        pytest.skip(f"{name} not installed")
    return path


def run_cli(*args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """Run the real ``tflmp`` entry point in a child process."""
    return subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


@contextmanager
def _once_per_session(tmp_path_factory, name: str):
    """A folder for ``name`` that every pytest-xdist worker of this session shares (the
    workers' common base folder), held under a file lock: the first worker to get here
    makes its contents, the others wait and find them made. Without xdist: a fresh folder
    of this process."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield tmp_path_factory.mktemp(name)
        return
    import fcntl

    folder = tmp_path_factory.getbasetemp().parent / name  # pytest-N/, above popen-gwK/
    folder.mkdir(exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A real `tflmp train` run on digits (float + 1 QAT epoch), trained once per test
    session and shared by the xdist workers: tests only read it (one that writes into a
    run copies it first)."""
    with _once_per_session(tmp_path_factory, "runs") as runs:
        run, outcome = runs / "lenet-digits", runs / "lenet-digits.json"
        if not outcome.is_file():  # not made by another worker yet
            p = run_cli("train", "--epochs", "4", "--qat-epochs", "1", "--out", run)
            assert p.returncode == 0, p.stderr
            outcome.write_text(json.dumps({"args": p.args, "returncode": p.returncode,
                                           "stdout": p.stdout, "stderr": p.stderr}))
        p = subprocess.CompletedProcess(**json.loads(outcome.read_text()))
    return run, p


@pytest.fixture(scope="session")
def digits_ptq_run(tmp_path_factory):
    """A post-training-quantization run: its Dense layers are per-channel int8."""
    run = tmp_path_factory.mktemp("runs") / "ptq"
    p = run_cli("train", "--epochs", "3", "--qat-epochs", "0", "--out", run)
    assert p.returncode == 0, p.stderr
    return run


@pytest.fixture(scope="session")
def digits():
    from tflm_pipeline.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_lenet(digits):
    """LeNet trained briefly on digits, its QAT twin, and both int8 conversions."""
    from tflm_pipeline.quantize import int8, qat
    from tflm_pipeline.models import build_model
    from tflm_pipeline.tf_env import load

    _, keras, _ = load()
    keras.utils.set_random_seed(0)
    x, y = digits.inputs("train")
    model = build_model("lenet", digits.preprocessing.input_shape, 10)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    qat_model = qat.quantize(model).model
    qat_model.compile(keras.optimizers.Adam(3e-4), "sparse_categorical_crossentropy",
                      ["accuracy"])
    qat_model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    calib = int8.representative_samples(x, 200)
    return {"float": model, "qat": qat_model,
            "ptq_tflite": int8.to_int8_tflite(model, calib),
            "qat_tflite": int8.to_int8_tflite(qat_model, calib)}


@pytest.fixture(scope="session")
def hello_world_int8() -> bytes:
    return shared("models", "hello_world_int8.tflite").read_bytes()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
