"""The generated C array compiles (host gcc and arm-none-eabi-gcc) to exactly the model bytes."""

import re
import subprocess

import pytest

from conftest import require_tool, shared
from tflm_pipeline.codegen.c_array import c_identifier, format_bytes, write_c_array

TOOLCHAINS = [("g++", "objcopy"), ("arm-none-eabi-g++", "arm-none-eabi-objcopy")]
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


def _compiled_array(tmp_path, cc, objcopy, source, ident, extra=()):
    obj = tmp_path / f"{cc}.o"
    subprocess.run([cc, "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", "-fdata-sections",
                    "-c", str(source), "-o", str(obj), *extra], check=True)
    out = tmp_path / f"{cc}.bin"
    subprocess.run([objcopy, "-O", "binary", f"--only-section=.rodata.{ident}_model_data",
                    str(obj), str(out)], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("cc, objcopy", TOOLCHAINS)
@pytest.mark.parametrize("model", ["hello_world_int8.tflite", "person_detect.tflite"])
def test_compiled_bytes_equal_the_tflite(tmp_path, cc, objcopy, model):
    require_tool(cc)
    require_tool(objcopy)
    data = shared("models", model).read_bytes()
    header, source = write_c_array(data, "my model", tmp_path, source=model)
    ident = "my_model"
    assert header.name == f"{ident}_model_data.h" and source.name == f"{ident}_model_data.cc"
    extra = ARM_FLAGS if cc.startswith("arm") else []
    assert _compiled_array(tmp_path, cc, objcopy, source, ident, extra) == data
    # alignment: the symbol's section is 16-byte aligned
    objdump = objcopy.replace("objcopy", "objdump")
    sections = subprocess.run([objdump, "-h", str(tmp_path / f"{cc}.o")],
                              capture_output=True, text=True, check=True).stdout
    row = next(ln.split() for ln in sections.splitlines()
               if f".rodata.{ident}_model_data" in ln.split())
    assert row[-1] in ("2**4", "2**5", "2**6")


def test_header_is_readable_and_guarded(tmp_path, hello_world_int8):
    header, source = write_c_array(hello_world_int8, "hello", tmp_path,
                                   source="/some/where/hello_world_int8.tflite")
    h, cc = header.read_text(), source.read_text()
    assert "#ifndef HELLO_MODEL_DATA_H_" in h and "#endif" in h
    assert "extern const unsigned char hello_model_data[];" in h
    assert "alignas(16) const unsigned char hello_model_data[]" in cc
    assert f"const unsigned int hello_model_data_len = {len(hello_world_int8)};" in cc
    assert "sha256" in h and "hello_world_int8.tflite" in h and "/some/where" not in h


@pytest.mark.parametrize("name, expected", [
    ("lenet", "lenet"), ("my model", "my_model"), ("9lives", "m_9lives"),
    ("int", "int_model"), ('a";system("rm");//', "a_system_rm"), ("", "model"),
])
def test_c_identifier(name, expected):
    ident = c_identifier(name)
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident)
    assert ident == expected if name else ident.startswith("model")


def test_unicode_names_stay_distinct():
    a, b = c_identifier("модель"), c_identifier("模型")
    assert a != b and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", i) for i in (a, b))


@pytest.mark.parametrize("n", [0, 1, 11, 12, 13, 1000])
def test_format_bytes_matches_plain_formatting(n, rng):
    data = bytes(rng.integers(0, 256, n, dtype="uint8"))
    expected = ",\n".join("  " + ", ".join(f"0x{b:02x}" for b in data[i:i + 12])
                          for i in range(0, n, 12))
    assert format_bytes(data) == expected
