"""Firmware projects: every target generated from a real run, exact resolver and arena,
golden vectors from TFLM, per-tensor Dense for old TFLM, flash command lines."""

import json
import os
import re
import subprocess

import numpy as np
import pytest

from conftest import require_tool, run_cli, shared
from tflm_pipeline import firmware, flash
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.firmware_files import render
from tflm_pipeline.mcu.releases import get_release
from tflm_pipeline.mcu.targets import get_target, targets
from tflm_pipeline.tflite.model_info import per_channel_dense_layers, read_model
from tflm_pipeline.tflm import interpreter
from tflm_shim import write_fake_interpreter, write_shim

TARGET_FILES = {
    "arduino-nano33ble": ["arduino-nano33ble.ino", "lenet_runner.cc", "lenet_model_data.cc"],
    "esp32": ["esp32.ino", "lenet_runner.cc", "lenet_golden.h"],
    "esp-idf": ["CMakeLists.txt", "sdkconfig.defaults", "main/CMakeLists.txt",
                "main/idf_component.yml", "main/main.cc", "main/lenet_runner.cc"],
    "platformio": ["platformio.ini", "src/main.cpp", "src/lenet_op_resolver.h"],
}


def generate(source, target, out=None):
    """The project ``tflmp firmware`` writes."""
    return firmware(source, target, out).project


def c_bytes(text: str) -> bytes:
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", text))


def project_model(project, code_dir) -> bytes:
    """The model bytes of the project's one ``<name>_model_data.cc``."""
    (source,) = (project / code_dir).glob("*_model_data.cc")
    return c_bytes(source.read_text().split("= {", 1)[1])


@pytest.fixture(scope="module")
def projects(digits_run, tmp_path_factory):
    run, _ = digits_run
    out = tmp_path_factory.mktemp("fw")
    return {t: generate(run, t, out / t) for t in targets()}


@pytest.mark.parametrize("target", list(TARGET_FILES))
def test_project_files_resolver_arena_and_golden(projects, target):
    project = projects[target]
    d = project.out_dir
    for rel in TARGET_FILES[target] + ["README.md", "tflmp_project.json"]:
        assert (d / rel).is_file(), rel
    code = d / ("main" if target == "esp-idf" else "src" if target == "platformio" else "")
    model = project_model(d, code)
    info = read_model(model)
    # exact op resolver
    resolver = (code / "lenet_op_resolver.h").read_text()
    assert f"kLenetOpCount = {len(info.op_names)};" in resolver
    assert resolver.count("!= kTfLiteOk") == len(info.op_names)
    # arena constant = the derivation for this target's TFLM
    t = get_target(target)
    expected = t.arena_for(info)
    assert f"constexpr size_t kArenaBytes = {expected.bytes};" in (code / "lenet_runner.h").read_text()
    # the settings header states the same arena: one figure per project (B2)
    settings = (code / "lenet_model_settings.h").read_text()
    assert f"#define LENET_ARENA_BYTES {expected.bytes}\n" in settings
    meta = json.loads((d / "tflmp_project.json").read_text())
    assert meta["arena"]["arena_bytes"] == expected.bytes and meta["target"] == target
    # golden outputs are what TFLM computes for the golden inputs
    golden = (code / "lenet_golden.h").read_text()
    ins_text, outs_text = golden.split("lenet_golden_outputs")
    ins = np.frombuffer(c_bytes(ins_text.split("= {", 1)[1]), np.int8)
    outs = np.frombuffer(c_bytes(outs_text), np.int8)
    n = meta["golden"]["count"]
    assert n == 4 and "digits test samples" in meta["golden"]["source"]
    got = interpreter.run(model, ins.reshape(n, *info.inputs[0].shape[1:]), workers=1)[0]
    np.testing.assert_array_equal(got.reshape(-1), outs)
    readme = (d / "README.md").read_text()
    assert t.tflm_library.split()[0] in readme and "USER HOOK" in readme


def test_each_target_names_and_sizes_the_tflm_it_links(projects):
    # the esp-idf project pins one component release; its resolver, arena and comment
    # are of that release, and the Arduino core's are of the 2023 TFLM it bundles
    idf = projects["esp-idf"].out_dir / "main"
    pinned = re.search(r'version: "==([0-9.]+)"', (idf / "idf_component.yml").read_text())
    resolver = (idf / "lenet_op_resolver.h").read_text()
    assert pinned and f"esp-tflite-micro {pinned.group(1)}" in resolver
    assert "1.2.0" not in resolver and "arduino-esp32" not in resolver
    arduino = (projects["esp32"].out_dir / "lenet_op_resolver.h").read_text()
    assert "esp-tflite-micro v1.2.0" in arduino and "arduino-esp32 3.0" in arduino
    arenas = {t: json.loads((projects[t].out_dir / "tflmp_project.json").read_text())["arena"]
              for t in ("esp-idf", "esp32")}
    assert arenas["esp-idf"]["profile"] == "esp-tflite-micro-1.4-xtensa"
    assert arenas["esp32"]["profile"] == "esp-tflite-micro-1.2-xtensa"
    assert "1.4.0" in arenas["esp-idf"]["tree"] and "1.2.0" in arenas["esp32"]["tree"]


@pytest.mark.parametrize("cc", ["g++", "arm-none-eabi-g++"])
@pytest.mark.parametrize("target", ["arduino-nano33ble", "esp-idf"])
def test_generated_runner_compiles(projects, tmp_path, cc, target):
    require_tool(cc)
    project = projects[target]
    code = project.out_dir / ("main" if target == "esp-idf" else "")
    shim = write_shim(tmp_path / "shim", get_release(get_target(target).releases[0]).op_set)
    main = tmp_path / "check_main.cc"
    main.write_text(render("check/check_main.cc.j2", name="lenet"))
    flags = ["-mcpu=cortex-m4", "-mthumb"] if cc.startswith("arm") else []
    for src in (main, code / "lenet_runner.cc", code / "lenet_model_data.cc"):
        subprocess.run([cc, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-DTFLMP_CHECK",
                        "-I", str(code), "-I", str(shim), "-c", str(src), "-o",
                        str(tmp_path / (src.stem + ".o")), *flags], check=True)


# The TFLM half of a self-test run, for the test below: Invoke() answers each golden
# input with the outputs the TFLM reference interpreter gave for it (the real TFLM runs
# under `firmware --check`, which needs a TFLM tree CI does not have).


@pytest.mark.parametrize("target", sorted(targets()))
def test_golden_self_test_fails_on_one_lsb(projects, tmp_path, target):
    # every target claims an exact comparison: one output byte off by 1 LSB is a FAIL
    require_tool("g++")
    project = projects[target]
    code = project.out_dir / {"esp-idf": "main", "platformio": "src"}.get(target, "")
    release = get_release(get_target(target).releases[0])
    shim = write_shim(tmp_path / "shim", release.op_set)
    golden = (code / "lenet_golden.h").read_text()
    outputs = np.frombuffer(c_bytes(golden.split("lenet_golden_outputs")[1]), np.int8)
    fake = write_fake_interpreter(tmp_path / "fake_tflm.cc", shim, "lenet", outputs)
    main = tmp_path / "check_main.cc"
    main.write_text(render("check/check_main.cc.j2", name="lenet"))

    def self_test(golden_text: str, *defines: str) -> subprocess.CompletedProcess:
        (tmp_path / "code").mkdir(exist_ok=True)
        for f in code.glob("lenet_*"):
            (tmp_path / "code" / f.name).write_bytes(f.read_bytes())
        (tmp_path / "code" / "lenet_golden.h").write_text(golden_text)
        exe = tmp_path / "self_test"
        subprocess.run(["g++", "-std=c++11", "-DTFLMP_CHECK", *defines, "-I",
                        str(tmp_path / "code"), "-I", str(shim), str(main),
                        str(tmp_path / "code" / "lenet_runner.cc"),
                        str(tmp_path / "code" / "lenet_model_data.cc"), str(fake), "-o",
                        str(exe)], check=True)
        return subprocess.run([str(exe)], capture_output=True, text=True)

    ok = self_test(golden)
    # digits: the raw-input vector (test pixels through input_from_raw) is checked too
    assert ok.returncode == 0 and ("self-test PASS (4/4 vectors exact, raw input vector exact)"
                                   in ok.stdout), ok.stdout
    head, tail = golden.split("lenet_golden_outputs")
    first = re.search(r"0x([0-9a-f]{2})", tail)
    byte = int(first.group(1), 16)  # one output byte of vector 0, moved 1 LSB (in int8)
    off = byte - 1 if byte == 0x7F else (byte + 1) % 256
    bad = self_test(head + "lenet_golden_outputs" + tail[:first.start()] + f"0x{off:02x}"
                    + tail[first.end():])
    assert bad.returncode == 1, bad.stdout
    assert "golden vector 0 differs (max diff 1 LSB)" in bad.stdout
    assert ("self-test FAIL (1/4 vectors differ, by up to 1 LSB; raw input vector exact)"
            in bad.stdout)
    # a failed allocation reports no used-bytes figure (TFLM's is meaningless then)
    failed = self_test(golden, "-DFAIL_ALLOCATION")
    assert failed.returncode == 1 and "AllocateTensors() failed" in failed.stdout
    assert "allocation failed" in failed.stdout and "arena_used_bytes" not in failed.stdout
    assert "arena_used_bytes 4321" in ok.stdout


def test_old_tflm_targets_get_per_tensor_dense(digits_ptq_run, tmp_path):
    run = digits_ptq_run
    assert per_channel_dense_layers(read_model(run / "model_int8.tflite"))
    old = generate(run, "arduino-nano33ble", tmp_path / "nano")
    assert any("re-converted" in n for n in old.notes)
    model = project_model(old.out_dir, old.out_dir)
    assert not per_channel_dense_layers(read_model(model))
    assert "re-converted with one scale per Dense" in (old.out_dir / "README.md").read_text()
    new = generate(run, "esp-idf", tmp_path / "idf")  # esp-tflite-micro >= 1.3.4 is correct
    assert not any("re-converted" in n for n in new.notes)
    assert per_channel_dense_layers(read_model(project_model(new.out_dir, new.out_dir / "main")))


def test_bare_model_with_per_channel_dense_is_requantized(digits_ptq_run, tmp_path):
    bare = tmp_path / "m.tflite"
    bare.write_bytes((digits_ptq_run / "model_int8.tflite").read_bytes())
    # no run around it: the int8 weights themselves are re-quantized to one scale per
    # layer, and the change is measured in TFLM on random inputs ...
    project = generate(bare, "esp32", tmp_path / "esp32")
    note = next(n for n in project.notes if "re-quantized" in n)
    assert "random inputs" in note and "int8 steps" in note
    assert not per_channel_dense_layers(read_model(project_model(project.out_dir,
                                                                 project.out_dir)))
    # ... or as accuracy on the test split of data given for it
    with_data = firmware(bare, "arduino-nano33ble", tmp_path / "nano", dataset="digits").project
    note = next(n for n in with_data.notes if "re-quantized" in n)
    assert re.search(r"0\.\d{4} accuracy on the test set of digits \(per-channel: 0\.\d{4}\)",
                     note), note


def test_float_model_is_refused(tmp_path):
    with pytest.raises(TflmpError, match="firmware needs a full-int8 model"):
        generate(shared("models", "hello_world_float.tflite"), "esp-idf", tmp_path / "x")


def test_arduino_sketch_folder_name_is_checked(digits_run, tmp_path):
    run, _ = digits_run
    with pytest.raises(TflmpError, match="not a valid sketch name"):
        generate(run, "esp32", tmp_path / "my sketch")


def test_flash_command_lines(projects):
    ran = []

    class Done:
        returncode = 0

    def fake_run(cmd):
        ran.append(cmd)
        return Done()

    nano = projects["arduino-nano33ble"].out_dir
    plan = flash(nano, "/dev/ttyACM0", dry_run=True)
    # a fresh machine first needs the core and the TFLM library
    assert plan.setup == [["arduino-cli", "core", "update-index"],
                          ["arduino-cli", "core", "install", "arduino:mbed_nano"],
                          ["arduino-cli", "lib", "install", "Chirale_TensorFLowLite@2.0.0"]]
    assert plan.commands == [
        ["arduino-cli", "compile", "--fqbn", "arduino:mbed_nano:nano33ble", "--output-dir",
         str(nano / "build"), str(nano)],
        ["arduino-cli", "upload", "-p", "/dev/ttyACM0", "--fqbn", "arduino:mbed_nano:nano33ble",
         str(nano)]]
    idf = projects["esp-idf"].out_dir
    plan = flash(idf, "/dev/ttyUSB0", dry_run=True)
    assert plan.setup == [["idf.py", "-C", str(idf), "set-target", "esp32"]]
    assert plan.commands == [
        ["idf.py", "-C", str(idf), "build"], ["idf.py", "-C", str(idf), "-p", "/dev/ttyUSB0", "flash"]]
    pio = projects["platformio"].out_dir
    assert flash(pio, "COM3", env="esp32", dry_run=True).commands == [
        ["pio", "run", "-d", str(pio), "-e", "esp32", "-t", "upload", "--upload-port", "COM3"]]
    with pytest.raises(TflmpError, match="pass --env"):
        flash(pio, "COM3", dry_run=True)
    # with the tool "installed", the commands are run in order
    import shutil as _shutil

    real_which = _shutil.which
    try:
        _shutil.which = lambda name: "/usr/bin/" + name
        flash(nano, "/dev/ttyACM0", run=fake_run)
    finally:
        _shutil.which = real_which
    assert [c[1:3] for c in ran] == [["core", "update-index"], ["core", "install"],
                                     ["lib", "install"], ["compile", "--fqbn"],
                                     ["upload", "-p"]]
    # the one-time setup ran: the next flash only builds and uploads
    ran.clear()
    try:
        _shutil.which = lambda name: "/usr/bin/" + name
        flash(nano, "/dev/ttyACM0", run=fake_run)
    finally:
        _shutil.which = real_which
    assert [c[1] for c in ran] == ["compile", "upload"]


def test_flash_without_the_tool_says_how_to_install_and_what_would_run(projects):
    nano = projects["arduino-nano33ble"].out_dir
    env = {**os.environ, "PATH": "/nonexistent"}
    import sys

    p = subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", "flash", str(nano), "--port",
                        "/dev/ttyACM0"], capture_output=True, text=True, env=env)
    assert p.returncode == 2
    line = p.stderr.strip()
    assert "\n" not in line and "arduino-cli not found" in line and "installation" in line
    assert "arduino-cli upload -p /dev/ttyACM0" in line


def test_cli_firmware_and_convert_target(digits_run, tmp_path):
    run, _ = digits_run
    p = run_cli("convert", run, "--target", "esp32", "--out", tmp_path / "esp32")
    assert p.returncode == 0, p.stderr
    assert "esp32 project for lenet" in p.stdout and (tmp_path / "esp32" / "esp32.ino").exists()
    p = run_cli("firmware", run, "--target", "nope")
    assert p.returncode == 2 and "unknown target 'nope'" in p.stderr
    p = run_cli("firmware", run, "--target", "esp32", "--check")
    assert p.returncode == 2 and "--check needs --tflm-dir" in p.stderr


@pytest.mark.slow  # builds TFLM
@pytest.mark.skipif(not os.environ.get("TFLMP_TFLM_DIR"),
                    reason="needs an esp-tflite-micro tree in TFLMP_TFLM_DIR (never in CI)")
def test_check_against_a_real_tflm_tree(projects):
    from tflm_pipeline.mcu.build_check import check_project

    project = projects["esp-idf"]
    results = check_project(project.out_dir, os.environ["TFLMP_TFLM_DIR"])
    assert results and all(r.passed for r in results), [r.output for r in results]
    for r in results:
        if r.platform.startswith("qemu"):
            assert r.arena_used_bytes <= r.arena_bytes <= 1.1 * r.arena_used_bytes + 1024


@pytest.mark.slow  # builds TFLM
@pytest.mark.skipif(not os.environ.get("TFLMP_TFLM_DIR"),
                    reason="needs an esp-tflite-micro tree in TFLMP_TFLM_DIR (never in CI)")
def test_verify_on_the_targets_own_tflm_build(digits_run):
    # the whole test split on esp-idf's tree built for this host (reference kernels, as the
    # pip interpreter): the same accuracy, every output bit-exact
    from tflm_pipeline import verify

    run, _ = digits_run
    result = verify(run, target="esp-idf", tflm_dir=os.environ["TFLMP_TFLM_DIR"],
                    kernels="reference", qemu=8)
    t = result.target
    assert t["samples"] == result.samples and t["bit_exact_share"] == 1.0, t
    assert t["value"] == t["pip_value"] == result.scores["accuracy"]
    assert t["first_divergence"] is None
    # eight samples on the same tree built for the Cortex-M4 under QEMU: byte-equal, counted
    q = result.qemu
    assert q["samples"] == 8 and q["bit_exact_share"] == 1.0, q
    assert q["sample_indices"][0] == 0 and q["sample_indices"][-1] == result.samples - 1
    assert 100_000 < q["instructions_per_inference"] < 10_000_000, q
    ops = q["op_instructions"]  # per op of the first inference: they add up to about it
    assert ops and abs(sum(o["instructions"] for o in ops) / q["instructions"][0] - 1) < 0.01


def test_verify_target_needs_its_tree():
    model = shared("models", "hello_world_int8.tflite")
    p = run_cli("verify", model, "--target", "esp-idf")
    assert p.returncode == 2 and "--target and --tflm-dir go together" in p.stderr
    p = run_cli("verify", model, "--target", "esp-idf", "--tflm-dir", model.parent)
    assert p.returncode == 2 and "holds no TFLM sources" in p.stderr


def test_board_packages_are_pinned(projects):
    # the op set and arena are checked against one release: the build must fetch that one
    ini = (projects["platformio"].out_dir / "platformio.ini").read_text()
    assert re.search(r"platform-espressif32/releases/download/\d+\.\d+\.\d+/", ini), ini
    assert "@2.0.0" in ini  # Chirale_TensorFLowLite
    esp32 = flash(projects["esp32"].out_dir, "PORT", dry_run=True)
    assert ["arduino-cli", "core", "install", "esp32:esp32@3.0.4", "--additional-urls",
            get_target("esp32").build["core_index_url"]] in esp32.setup


SHARED_INT8 = ["hello_world_int8.tflite", "micro_speech_quantized.tflite",
               "person_detect.tflite", "trained_lstm_int8.tflite"]


@pytest.mark.parametrize("model", SHARED_INT8)
def test_firmware_for_outside_models_compiles_with_its_main(model, tmp_path):
    # models nobody here trained: labels default to class_0..N-1, every source compiles
    from tflm_pipeline.mcu.build_check import compile_board_main

    for target in targets():
        project = generate(shared("models", model), target, tmp_path / target.replace("-", "_"))
        code = project.out_dir / {"esp-idf": "main", "platformio": "src"}.get(target, "")
        settings = (code / f"{project.name}_model_settings.h").read_text()
        assert '"class_0",' in settings
        main = compile_board_main(project.out_dir, target, code)
        assert main.passed and main.compile_only, main.output
        shim = write_shim(tmp_path / "shim" / target,
                          get_release(get_target(target).releases[0]).op_set)
        for src in (code / f"{project.name}_runner.cc", code / f"{project.name}_model_data.cc"):
            subprocess.run(["g++", "-std=c++11", "-fsyntax-only", "-Wall", "-Werror",
                            "-DTFLMP_CHECK", "-I", str(code), "-I", str(shim), str(src)],
                           check=True)


def test_outside_models_take_labels_and_a_task(tmp_path):
    speech = shared("models", "micro_speech_quantized.tflite")
    project = firmware(speech, "esp-idf", tmp_path / "a",
                       labels=["silence", "unknown", "yes", "no"]).project
    assert '"yes",' in (project.out_dir / "main" / "micro_speech_quantized_model_settings.h"
                        ).read_text()
    with pytest.raises(TflmpError, match="3 labels for a model with 4 output values"):
        firmware(speech, "esp-idf", tmp_path / "b", labels=["a", "b", "c"])
    sine = firmware(shared("models", "hello_world_int8.tflite"), "esp-idf", tmp_path / "c",
                    task="regression").project
    runner = (sine.out_dir / "main" / "hello_world_int8_runner.h").read_text()
    assert "int Predict(const float* raw, float* values);" in runner and "Classify" not in runner
    p = run_cli("firmware", shared("models", "audio_preprocessor_int8.tflite"), "--target",
                "esp-idf", "--out", tmp_path / "d")
    assert p.returncode == 2 and "firmware needs a full-int8 model" in p.stderr
    assert not (tmp_path / "d").exists()

