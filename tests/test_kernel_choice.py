"""Which kernels a TFLM tree's host build compiles (verify --target --kernels): on tiny
trees shaped like esp-tflite-micro (with ESP-NN beside it) and an Arduino CMSIS-NN library,
the sources chosen, the cache key, a real compile, and the one-line mistakes."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, shared
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.mcu.build_check import HOST_TOOLCHAIN, build_library, find_tree, library_dir

SCALE_H = "#pragma once\nint Scale(int x);\n"


def _esp_tree(base: Path, *, esp_nn: str | None = "esp-nn") -> Path:
    """esp-tflite-micro in miniature: a reference kernel, its ESP-NN wrapper (which reads
    the IDF clock, as the real ones do) and, beside the tree, ESP-NN with an ANSI C and a
    generic-optimized source."""
    root = base / "esp-tflite-micro"
    micro = root / "tensorflow" / "lite" / "micro"
    (micro / "kernels" / "esp_nn").mkdir(parents=True)
    (root / "third_party" / "flatbuffers" / "include").mkdir(parents=True)
    (micro / "micro_interpreter.h").write_text("#pragma once\n")
    (micro / "debug_log.h").write_text("#include <stdarg.h>\n")
    (micro / "kernels" / "scale.h").write_text(SCALE_H)
    (micro / "kernels" / "scale.cc").write_text("int Scale(int x) { return 3 * x; }\n")
    (micro / "kernels" / "esp_nn" / "scale.cc").write_text(
        '#include <esp_timer.h>\n#include <esp_nn.h>\n'
        'int Scale(int x) { long long t = esp_timer_get_time(); return esp_nn_scale(x) + (int)(t - t); }\n')
    if esp_nn:
        nn = base / esp_nn
        (nn / "include").mkdir(parents=True)
        (nn / "src" / "basic_math").mkdir(parents=True)
        (nn / "idf_component.yml").write_text('version: "1.2.3"\n')
        (nn / "include" / "esp_nn.h").write_text(
            '#pragma once\n#ifdef __cplusplus\nextern "C" {\n#endif\n'
            "#if defined(CONFIG_NN_ANSI_C)\n#define esp_nn_scale esp_nn_scale_ansi\n#endif\n"
            "int esp_nn_scale_ansi(int x);\n#ifdef __cplusplus\n}\n#endif\n")
        (nn / "src" / "basic_math" / "esp_nn_scale_ansi.c").write_text(
            "int esp_nn_scale_ansi(int x) { return 3 * x; }\n")
        (nn / "src" / "basic_math" / "esp_nn_scale_opt.c").write_text(
            "int esp_nn_scale_opt(int x) { return x + x + x; }\n")
    return root


def _names(tree) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in tree.sources}


def test_esp_tree_target_kernels_are_esp_nn_ansi_c(tmp_path):
    tree = find_tree(_esp_tree(tmp_path), "target")
    assert tree.kernel_choice == "esp-nn-ansi" and "ESP-NN 1.2.3 ANSI C" in tree.kernels
    names = _names(tree)
    assert {"esp_nn/scale.cc", "basic_math/esp_nn_scale_ansi.c"} <= names
    assert "kernels/scale.cc" not in names and "basic_math/esp_nn_scale_opt.c" not in names
    assert {"-DESP_NN=1", "-DCONFIG_NN_ANSI_C=1"} <= set(tree.defines)
    # ESP-NN's default NN_OPTIMIZED: its generic C beside the ANSI C, as an ESP32 links it
    opt = find_tree(tmp_path / "esp-tflite-micro", "optimized")
    assert opt.kernel_choice == "esp-nn-opt" and "-DCONFIG_NN_OPTIMIZED=1" in opt.defines
    assert {"basic_math/esp_nn_scale_opt.c", "basic_math/esp_nn_scale_ansi.c"} <= _names(opt)
    # reference on request, and what firmware --check has always built
    for kernels in ("reference", None):
        ref = find_tree(tmp_path / "esp-tflite-micro", kernels)
        assert ref.kernel_choice == "reference" and "kernels/scale.cc" in _names(ref)
        assert not any(p.name.startswith("esp_nn") for p in ref.sources)


def test_esp_nn_as_an_idf_managed_component(tmp_path):
    managed = tmp_path / "managed_components"
    _esp_tree(managed, esp_nn="espressif__esp-nn")
    (managed / "esp-tflite-micro").rename(managed / "espressif__esp-tflite-micro")
    tree = find_tree(managed / "espressif__esp-tflite-micro", "target")
    assert tree.other_roots == ((managed / "espressif__esp-nn").resolve(),)


def test_cache_key_holds_the_kernel_choice_not_the_place(tmp_path):
    cache = tmp_path / "cache"
    here = _esp_tree(tmp_path / "a")
    esp = library_dir(HOST_TOOLCHAIN, find_tree(here, "target"), cache)
    ref = library_dir(HOST_TOOLCHAIN, find_tree(here, "reference"), cache)
    opt = library_dir(HOST_TOOLCHAIN, find_tree(here, "optimized"), cache)
    assert len({esp, ref, opt}) == 3
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # tree and ESP-NN elsewhere: same key
    assert library_dir(HOST_TOOLCHAIN, find_tree(tmp_path / "b" / "esp-tflite-micro",
                                                 "target"), cache) == esp
    ansi = tmp_path / "b" / "esp-nn" / "src" / "basic_math" / "esp_nn_scale_ansi.c"
    ansi.write_text("int esp_nn_scale_ansi(int x) { return x * 3; }\n")  # ESP-NN changed
    assert library_dir(HOST_TOOLCHAIN, find_tree(tmp_path / "b" / "esp-tflite-micro",
                                                 "target"), cache) != esp


def test_esp_nn_build_compiles_and_links(tmp_path):
    # the wrapper finds esp_nn.h, tflmp's esp_timer.h stand-in, and ESP-NN's ANSI C
    tree = find_tree(_esp_tree(tmp_path), "target")
    lib = build_library(HOST_TOOLCHAIN, tree, tmp_path / "cache")
    main = tmp_path / "main.cc"
    main.write_text('int Scale(int x);\nint main() { return Scale(14) == 42 ? 0 : 1; }\n')
    exe = tmp_path / "main"
    import subprocess

    subprocess.run(["g++", str(main), str(lib), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_esp_tree_without_esp_nn_is_told_where_to_put_it(tmp_path):
    root = _esp_tree(tmp_path, esp_nn=None)
    with pytest.raises(TflmpError) as e:
        find_tree(root, "target")
    assert str(tmp_path / "esp-nn") in str(e.value) and "--kernels reference" in str(e.value)
    p = run_cli("verify", tmp_path / "none.tflite", "--dataset", "digits", "--target",
                "esp-idf", "--tflm-dir", root)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "builds its kernels with ESP-NN" in p.stderr


def _arduino_cmsis_tree(base: Path) -> Path:
    """An Arduino TFLM library such as Chirale's: CMSIS-NN wrappers and library, and no
    reference kernel of the same name."""
    src = base / "chirale" / "src"
    kernels = src / "tensorflow" / "lite" / "micro" / "kernels"
    (kernels / "cmsis_nn").mkdir(parents=True)
    (src / "third_party" / "flatbuffers" / "include").mkdir(parents=True)
    (src / "third_party" / "cmsis_nn" / "Source").mkdir(parents=True)
    (base / "chirale" / "library.properties").write_text("name=Chirale\n")
    (kernels.parent / "micro_interpreter.h").write_text("#pragma once\n")
    (kernels.parent / "debug_log.h").write_text("#include <stdarg.h>\n")
    (kernels / "relu.cpp").write_text("int Relu(int x) { return x > 0 ? x : 0; }\n")
    (kernels / "cmsis_nn" / "conv.cpp").write_text("int Conv(int x);\n")
    (src / "third_party" / "cmsis_nn" / "Source" / "arm_convolve_s8.c").write_text("int c;\n")
    return base / "chirale"


def test_arduino_cmsis_nn_library(tmp_path):
    root = _arduino_cmsis_tree(tmp_path)
    for kernels in ("target", None):
        tree = find_tree(root, kernels)
        assert tree.kernel_choice == "cmsis-nn"
        assert {"cmsis_nn/conv.cpp", "Source/arm_convolve_s8.c", "kernels/relu.cpp"} <= _names(tree)
    with pytest.raises(TflmpError) as e:
        find_tree(root, "reference")
    assert "ships no reference kernels for conv" in str(e.value)
    with pytest.raises(TflmpError) as e:
        find_tree(root, "fast")
    assert "--kernels must be target, reference, optimized" in str(e.value)


# --- real trees (never in CI): TFLMP_TFLM_DIR an esp-tflite-micro tree with esp-nn beside
# it, TFLMP_CHIRALE_DIR the Chirale_TensorFlowLite library; each build is cached

ESP_TREE = os.environ.get("TFLMP_TFLM_DIR")
CHIRALE_TREE = os.environ.get("TFLMP_CHIRALE_DIR")


@pytest.mark.slow  # builds TFLM with ESP-NN once
@pytest.mark.skipif(not ESP_TREE, reason="needs esp-tflite-micro in TFLMP_TFLM_DIR (never in CI)")
def test_verify_with_esp_nn_ansi_c(digits_run):
    from tflm_pipeline import verify

    run, _ = digits_run
    result = verify(run, target="esp-idf", tflm_dir=ESP_TREE)  # --kernels target
    t = result.target
    assert t["kernels"] == "esp-nn-ansi" and "ESP-NN" in t["build"]
    assert t["samples"] == result.samples
    # ESP-NN's ANSI C computes LeNet's ops as the reference kernels do, bit for bit
    assert t["bit_exact_share"] == 1.0 and t["value"] == t["pip_value"], t


@pytest.mark.slow  # builds TFLM with CMSIS-NN once
@pytest.mark.skipif(not CHIRALE_TREE, reason="needs Chirale in TFLMP_CHIRALE_DIR (never in CI)")
def test_verify_with_cmsis_nn_portable_c(digits_run):
    from tflm_pipeline import verify

    run, _ = digits_run
    result = verify(run, target="arduino-nano33ble", tflm_dir=CHIRALE_TREE)
    t = result.target
    assert t["kernels"] == "cmsis-nn" and "CMSIS-NN" in t["build"]
    # CMSIS-NN's C paths compute LeNet's ops as the reference kernels do, bit for bit
    assert t["samples"] == result.samples and t["bit_exact_share"] == 1.0, t
    assert t["value"] == t["pip_value"], t


@pytest.mark.slow  # 50 LSTM inferences in each interpreter
@pytest.mark.skipif(not ESP_TREE, reason="needs esp-tflite-micro in TFLMP_TFLM_DIR (never in CI)")
def test_lstm_state_does_not_carry_from_one_sample_to_the_next(tmp_path):
    # the harness resets the interpreter before each input, as the pip interpreter does;
    # without it mnist_lstm's outputs differed on about 40% of the samples
    from tflm_pipeline import verify
    from tflm_pipeline.data import DataSpec, load_dataset

    ds = load_dataset(DataSpec("mnist", str(shared("datasets", "mnist"))))
    x, y = ds.inputs("test")
    np.savez(tmp_path / "mnist50.npz", x_train=x[:1], y_train=y[:1], x_val=x[:1],
             y_val=y[:1], x_test=x[:50], y_test=y[:50], labels=np.arange(10).astype(str))
    result = verify(shared("models", "trained_lstm_int8.tflite"),
                    dataset=str(tmp_path / "mnist50.npz"), target="esp-idf",
                    tflm_dir=ESP_TREE, kernels="reference")
    assert result.target["bit_exact_share"] == 1.0, result.target
