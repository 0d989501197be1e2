"""What `firmware --check` stands on: the TFLM trees it builds against (checked before
anything is written, an upstream clone told its download step, the library cached by
what it is built from: the same tree typed relative or absolute builds once, a changed
header again), and progress of those long builds in logs."""

import os
from pathlib import Path

import pytest

from conftest import run_cli, shared
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.mcu.build_check import _Toolchain, build_library, find_tree


def _tree(root: Path, *, upstream: bool = False) -> Path:
    """A TFLM-shaped tree of two sources and a header, small enough to compile in a
    second with the host g++ (find_tree and build_library treat it as any TFLM tree);
    ``upstream``: laid out as a tflite-micro clone, before its download step."""
    micro = root / "tensorflow" / "lite" / "micro"
    (micro / "kernels").mkdir(parents=True)
    if upstream:
        (micro / "tools" / "make").mkdir(parents=True)
        (micro / "tools" / "make" / "Makefile").write_text("third_party_downloads:\n")
    else:
        (root / "third_party" / "flatbuffers" / "include").mkdir(parents=True)
    (micro / "micro_interpreter.h").write_text("#pragma once\n")
    (micro / "debug_log.h").write_text("#include <stdarg.h>\n")
    (micro / "kernels" / "scale.h").write_text("#pragma once\nconstexpr int kScale = 3;\n")
    (micro / "kernels" / "scale.cc").write_text(
        '#include "tensorflow/lite/micro/kernels/scale.h"\nint Scale(int x) { return kScale * x; }\n')
    (micro / "micro_log.cc").write_text("int Log(int x) { return x; }\n")
    return root


def test_one_build_per_tree_content(tmp_path, monkeypatch, caplog):
    _tree(tmp_path / "tflm")
    host, cache = _Toolchain("host", "gcc", "g++", "ar", []), tmp_path / "cache"
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO", "tflm_pipeline"):
        lib = build_library(host, find_tree(Path("tflm")), cache)  # as typed: relative
    assert "building TFLM for host (reference kernels): 2 sources" in caplog.text
    built = lib.stat().st_mtime_ns
    again = build_library(host, find_tree(tmp_path / "tflm"), cache)  # ... and absolute
    assert again == lib and lib.stat().st_mtime_ns == built  # found, not rebuilt
    assert len(os.listdir(cache / "tflm")) == 1
    header = tmp_path / "tflm" / "tensorflow" / "lite" / "micro" / "kernels" / "scale.h"
    header.write_text("#pragma once\nconstexpr int kScale = 4;\n")  # a source did not change
    changed = build_library(host, find_tree(Path("tflm")), cache)
    assert changed != lib and changed.is_file()


def test_upstream_clone_is_told_its_download_step_then_accepted(tmp_path):
    tree = _tree(tmp_path / "tflite-micro", upstream=True)
    with pytest.raises(TflmpError) as e:
        find_tree(tree)
    assert "make -f tensorflow/lite/micro/tools/make/Makefile third_party_downloads" in str(e.value)
    assert "create_tflm_tree.py" in str(e.value)
    downloads = tree / "tensorflow" / "lite" / "micro" / "tools" / "make" / "downloads"
    (downloads / "flatbuffers" / "include").mkdir(parents=True)  # what the step fetches
    assert downloads / "flatbuffers" / "include" in find_tree(tree).includes


@pytest.mark.parametrize("args, message", [
    (["--tflm-dir", "TREE"], "--tflm-dir is the tree --check builds against; add --check"),
    (["--check", "--tflm-dir", "TREE"], "third_party_downloads"),
])
def test_tree_mistakes_are_one_line_before_the_project_is_written(tmp_path, args, message):
    tree = _tree(tmp_path / "tflite-micro", upstream=True)
    out = tmp_path / "fw"
    p = run_cli("firmware", shared("models", "hello_world_int8.tflite"), "--target", "esp-idf",
                "--task", "regression", "--out", out, *[str(tree) if a == "TREE" else a
                                                       for a in args])
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert message in p.stderr and not out.exists()


def test_long_steps_report_progress_in_logs_too():
    # off a terminal (CI, a pipe) a build of minutes says how far it is, with the time
    import io
    import time

    from tflm_pipeline.progress import Progress

    log = io.StringIO()
    p = Progress(3, "building TFLM for host", stream=log, heartbeat=0.05)
    p.update(1)
    time.sleep(0.06)
    p.update(2)
    p.update(2)  # no second line within the heartbeat
    p.close()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("building TFLM for host: 2/3 after ") and len(lines) == 2
    assert lines[1].startswith("building TFLM for host: 2/3 in ")

