"""Settings header and op resolver: real compilers, numbers checked against NumPy/TFLite.

The resolver header is compiled against tflm_shim (declarations of the API of each TFLM
source version); see there why.
"""

import json
import re
import subprocess

import numpy as np
import pytest

from conftest import require_tool, shared
from tflm_shim import write_shim
from tflm_pipeline.tflite import quant
from tflm_pipeline import convert
from tflm_pipeline.codegen import write_model_sources
from tflm_pipeline.codegen.c_literals import c_identifier
from tflm_pipeline.mcu import arena
from tflm_pipeline.mcu.releases import get_release, op_tables, registrations
from tflm_pipeline.data import Preprocessing
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.tflite.model_info import read_model

# Ops the TFLM examples register for these models (examples/*/main_functions.cc).
EXAMPLE_RESOLVERS = {
    "hello_world_int8.tflite": ["AddFullyConnected"],
    "micro_speech_quantized.tflite": ["AddReshape", "AddDepthwiseConv2D", "AddFullyConnected",
                                      "AddSoftmax"],
    "person_detect.tflite": ["AddDepthwiseConv2D", "AddConv2D", "AddAveragePool2D",
                             "AddReshape", "AddSoftmax"],
}


def write_sources(model: bytes, name: str, out, release: str = "tflm-2026", pre=None):
    """The model's C files for ``release``, as the convert and firmware commands write them."""
    info = read_model(model)
    return write_model_sources(model, info, c_identifier(name), out,
                               ops=registrations(info, release),
                               op_sources=get_release(release).op_set_source,
                               arena=arena.estimate(info, release), preprocessing=pre)


@pytest.mark.parametrize("name, methods", EXAMPLE_RESOLVERS.items())
def test_resolver_registers_what_the_examples_register(name, methods):
    info = read_model(shared("models", name))
    assert [r.method for r in registrations(info)] == methods


# The arenas the TFLM examples hard-code (smallest across their trees).
EXAMPLE_ARENAS = {"hello_world_int8.tflite": 2000, "micro_speech_quantized.tflite": 10 * 1024,
                  "person_detect.tflite": 136 * 1024}


@pytest.mark.parametrize("name, hand_picked", EXAMPLE_ARENAS.items())
def test_example_models_get_arenas_at_or_below_the_hand_picked_ones(tmp_path, name, hand_picked):
    model = shared("models", name).read_bytes()
    info = read_model(model)
    convert(shared("models", name), tmp_path, name="m", c_array=True)  # the default release
    text = (tmp_path / "m_model_settings.h").read_text()
    derived = int(re.search(r"#define M_ARENA_BYTES (\d+)", text).group(1))
    assert derived == arena.estimate(info, "tflm-2026").bytes
    assert arena.estimate(info, "tflm-2026").exact
    assert 0 < derived <= hand_picked


@pytest.mark.parametrize("cc", ["g++", "arm-none-eabi-g++"])
@pytest.mark.parametrize("release", ["tflm-2026", "chirale-2.0.0-cmsis-nn"])
def test_generated_sources_compile(tmp_path, cc, release):
    require_tool(cc)
    model = shared("models", "person_detect.tflite").read_bytes()
    out = tmp_path / "gen"
    pre = Preprocessing("vww", (96, 96, 1), "uint8", 1 / 255, 0.0, ["no person", 'per"son'])
    write_sources(model, "person detect", out, release, pre)
    shim = tmp_path / "shim"
    write_shim(shim, get_release(release).op_set)
    main = tmp_path / "main.cc"
    main.write_text(
        '#include "person_detect_model_data.h"\n#include "person_detect_model_settings.h"\n'
        '#include "person_detect_op_resolver.h"\n'
        "int use(PersonDetectOpResolver& r) {\n"
        "  return PersonDetectRegisterOps(r) + person_detect_input_quantize(0.5f)\n"
        "         + (int)person_detect_output_dequantize(3) + PERSON_DETECT_INPUT_ELEMENTS\n"
        "         + (int)person_detect_model_data_len + (int)sizeof(person_detect_labels);\n}\n")
    flags = ["-mcpu=cortex-m4", "-mthumb"] if cc.startswith("arm") else []
    for src in (main, out / "person_detect_model_data.cc"):
        subprocess.run([cc, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-c", str(src),
                        "-I", str(out), "-I", str(shim), "-o", str(src.with_suffix(".o")),
                        *flags], check=True)
    header = (out / "person_detect_op_resolver.h").read_text()
    assert "MicroMutableOpResolver<kPersonDetectOpCount>" in header
    assert "kPersonDetectOpCount = 5;" in header and header.count("!= kTfLiteOk") == 5


def test_settings_helpers_match_numpy(tmp_path, hello_world_int8, rng):
    require_tool("gcc")
    info = read_model(hello_world_int8)
    pre = Preprocessing("sine", (1,), "float32", 0.5, 0.25, ["y"])
    write_sources(hello_world_int8, "hello", tmp_path, pre=pre)
    prog = tmp_path / "q.c"
    prog.write_text(
        '#include <stdio.h>\n#include "hello_model_settings.h"\n'
        "int main(void) { float x; int q;\n"
        '  while (scanf("%f %d", &x, &q) == 2)\n'
        '    printf("%d %d %.9g\\n", hello_input_quantize(x), hello_input_from_raw(x, 0),\n'
        "           hello_output_dequantize((int8_t)q));\n  return 0; }\n")
    exe = tmp_path / "q"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Werror", str(prog), "-I", str(tmp_path),
                    "-o", str(exe), "-lm"], check=True)
    t_in, t_out = info.inputs[0], info.outputs[0]
    s = np.float32(t_in.scales[0])
    # random values plus exact ties (k + 0.5) * scale, which NumPy's round gets wrong
    x = np.concatenate([rng.normal(0, 3, 3000), (np.arange(-300, 300) + 0.5) * s,
                        [1e6, -1e6]]).astype(np.float32)
    q = rng.integers(-128, 128, len(x))
    text = "\n".join(f"{v!r} {int(k)}" for v, k in zip(x.tolist(), q)) + "\n"
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    got = np.array([ln.split() for ln in out if ln], dtype=np.float64)
    np.testing.assert_array_equal(got[:, 0], quant.quantize(x, t_in))
    np.testing.assert_array_equal(got[:, 1], quant.quantize(x * np.float32(0.5)
                                                              + np.float32(0.25), t_in))
    np.testing.assert_allclose(got[:, 2], quant.dequantize(q.astype(np.int8), t_out),
                               rtol=1e-7)


def test_unsupported_op_is_an_error_before_anything_is_written(tmp_path):
    # chirale's TFLM (2023) lacks the Signal ops the audio preprocessor uses
    model = shared("models", "audio_preprocessor_int8.tflite").read_bytes()
    with pytest.raises(TflmpError, match="op SignalWindow is not implemented by TFLM in "
                                         "chirale-2.0.0"):
        write_sources(model, "audio", tmp_path, "chirale-2.0.0-cmsis-nn")
    assert not list(tmp_path.iterdir())


def test_op_table_is_consistent():
    tables = op_tables()
    for op_set in tables["op_sets"].values():
        assert set(op_set["missing_builtins"]) <= set(tables["builtin_methods"])
        assert set(op_set["custom_ops"]) <= set(tables["custom_methods"])
    # every release a target or board links names an op set that exists
    from tflm_pipeline.mcu.boards import boards
    from tflm_pipeline.mcu.targets import targets

    linked = {r for t in targets().values() for r in t.releases}
    linked |= {b.tflm_release for b in boards().values()}
    assert all(get_release(r).op_set in tables["op_sets"] for r in linked)
    assert json.dumps(tables)  # plain JSON, shipped as package data
