"""A non-editable install must carry models/ and firmware/ templates."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # built from a clean copy: a build/ left in the checkout by an earlier layout would
    # put stale modules into the wheel
    source = out / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "runs", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True, cwd=out)
    (path,) = out.glob("tflmp-*.whl")
    return path


def test_wheel_contains_zoo_and_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("tflm_pipeline/cli.py", "tflm_pipeline/models/__init__.py",
                     "tflm_pipeline/models/lenet.py", "tflm_pipeline/firmware_files/__init__.py",
                     "tflm_pipeline/firmware_files/model/model_data.cc.j2",
                     "tflm_pipeline/firmware_files/model/model_data.h.j2",
                     "tflm_pipeline/firmware_files/tflm_ops.json",
                     "tflm_pipeline/firmware_files/boards.yaml",
                     "tflm_pipeline/firmware_files/known_issues.yaml",
                     "tflm_pipeline/firmware_files/kernel_sizes.json",
                     "tflm_pipeline/firmware_files/check/platform/Arduino.h",
                     "tflm_pipeline/firmware_files/check/platform/freertos/task.h",
                     "tflm_pipeline/firmware_files/check/frontend_main.c",
                     "tflm_pipeline/firmware_files/check/raw_input_main.c",
                     "tflm_pipeline/firmware_files/check/platform/driver/i2s_std.h",
                     "tflm_pipeline/firmware_files/check/platform/PDM.h",
                     "tflm_pipeline/firmware_files/check/esp_host/esp_timer.h",
                     "tflm_pipeline/firmware_files/features/tflmp_audio_frontend.c",
                     "tflm_pipeline/firmware_files/features/tflmp_audio_frontend.h",
                     "tflm_pipeline/firmware_files/features/audio_frontend.c.j2",
                     "tflm_pipeline/reports/templates/report.html.j2",
                     "tflm_pipeline/codegen/c_array.py", "tflm_pipeline/tuning/space.py"):
        assert expected in names, expected
    assert not any(n.startswith(("models/", "firmware/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "tflmp = tflm_pipeline.cli:main" in entry_points
    assert "[pytest11]" in entry_points and "tflm_pipeline.testing" in entry_points


def test_installed_wheel_works_outside_the_repo(wheel, tmp_path, hello_world_int8):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}  # shadows any editable install
    where = subprocess.run([sys.executable, "-c", "import tflm_pipeline.models as m, "
                            "tflm_pipeline.firmware_files as f; print(m.__file__, f.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.stdout.count(str(target)) == 2, where.stdout
    model = tmp_path / "hello.tflite"
    model.write_bytes(hello_world_int8)
    p = subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", "convert", str(model),
                        "--c-array", "--out", str(tmp_path / "c")], capture_output=True,
                       text=True, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "c" / "hello_model_data.cc").exists()
    p = subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", "profile", str(model),
                        "--board", "arduino-nano33ble"], capture_output=True, text=True,
                       cwd=tmp_path, env=env)
    assert p.returncode == 0 and "fits arduino-nano33ble" in p.stdout, p.stderr
