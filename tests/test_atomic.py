"""A tflmp process killed with SIGKILL at a random point leaves every output either as it
was before or complete, never partial."""

import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import shared

KILLS = 12


def _cli(*args):
    return [sys.executable, "-m", "tflm_pipeline.cli", *map(str, args)]


def _kill_at_random_points(cmd, rng, duration: float, check) -> int:
    """Start ``cmd`` KILLS times, SIGKILL it after a random share of ``duration``, and
    call ``check`` after each; returns how many runs were killed before finishing."""
    killed = 0
    for _ in range(KILLS):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.3, 1.0)) * duration)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
        check()
    return killed


def _timed(cmd) -> float:
    t = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - t


def test_killed_convert_leaves_old_or_new_c_sources(tmp_path):
    rng = np.random.default_rng(7)
    models = [shared("models", "person_detect.tflite"), shared("models", "micro_speech_quantized.tflite")]
    versions = []
    for i, m in enumerate(models):
        out = tmp_path / f"v{i}"
        subprocess.run(_cli("convert", m, "--c-array", "--name", "net", "--out", out),
                       check=True, capture_output=True)
        versions.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert versions[0].keys() == versions[1].keys()
    out = tmp_path / "out"
    shutil.copytree(tmp_path / "v0", out)
    duration = _timed(_cli("convert", models[1], "--c-array", "--name", "net", "--out", out))
    shutil.rmtree(out)
    shutil.copytree(tmp_path / "v0", out)

    def check():
        for name in versions[0]:
            data = (out / name).read_bytes()
            assert data in (versions[0][name], versions[1][name]), f"{name} is partial"

    cmd = _cli("convert", models[1], "--c-array", "--name", "net", "--out", out)
    assert _kill_at_random_points(cmd, rng, duration, check) >= KILLS // 3


def test_killed_report_leaves_old_or_new_html(digits_run, tmp_path):
    rng = np.random.default_rng(8)
    run = tmp_path / "run"
    shutil.copytree(digits_run[0], run)
    duration = _timed(_cli("report", run))
    old = {n: (run / n).read_bytes() for n in ("report.html", "report.md")}
    _timed(_cli("report", run))
    assert old == {n: (run / n).read_bytes() for n in old}

    def check():  # rendering is deterministic: old and new files are the same bytes
        for name, before in old.items():
            assert (run / name).read_bytes() == before, f"{name} is partial"

    assert _kill_at_random_points(_cli("report", run), rng, duration, check) >= KILLS // 3
