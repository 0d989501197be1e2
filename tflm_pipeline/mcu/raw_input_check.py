"""Run a generated project's raw-input code (``<name>_input_from_raw`` of
``<name>_model_settings.h``: what ``Classify(const float* raw)`` uses) on this host or on
a Cortex-M4 under QEMU, and measure what it adds to a Cortex-M4 image: the evidence that
the int8 inputs a board computes from raw sensor rows equal training's.

The harness (``firmware/check/raw_input_main.c``) reads float32 samples from a file and
writes int8 inputs back, over semihosting under QEMU (``-M mps2-an386``, as
``firmware --check``).  It is compiled the way board builds compile: GNU C, where GCC
may contract ``a * b + c`` into a fused multiply-add (``-ffp-contract=fast``), and
hard float on the Cortex-M4F.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..firmware_files import path as firmware_file
from . import c_program
from .build_check import CM4_FLAGS

C_FLAGS = ["-std=gnu99", "-O2", "-ffp-contract=fast", "-Wall", "-Wextra",
           "-Wno-unused-function", "-ffunction-sections", "-fdata-sections"]
_SIZE_PROBE = """#include "{header}"
// The raw-input code one sample takes: what Classify() runs before Invoke().
void {name}_fill_input(const float* raw, int8_t* in) {{
  for (int i = 0; i < {macro}_INPUT_ELEMENTS; ++i) in[i] = {name}_input_from_raw(raw[i], i);
}}
"""


@dataclass(frozen=True)
class RawInputRun:
    """What a project's raw-input code computed on one platform (int8, samples x values)."""

    from_raw: np.ndarray  # <name>_input_from_raw(value, index)
    quantized: np.ndarray  # <name>_input_quantize(value): the values taken as float inputs


@dataclass(frozen=True)
class RawInputSize:
    """Bytes the raw -> int8 code adds to a Cortex-M4 image (arm-none-eabi-gcc -O2)."""

    code: int  # the loop and the inlined helpers (.text)
    constants: int  # scale/offset tables (.rodata)
    roundf: int  # newlib's roundf, linked once
    ram: int  # .data + .bss

    @property
    def flash(self) -> int:
        return self.code + self.constants + self.roundf

    def to_dict(self) -> dict:
        return {"code": self.code, "constants": self.constants, "roundf": self.roundf,
                "flash": self.flash, "ram": self.ram}


def run_raw_inputs(code_dir: str | Path, name: str, raw: np.ndarray, *,
                   platform: str = "host") -> RawInputRun:
    """float32 samples (N, values) through the project's C, compiled for ``platform``
    (host, or cortex-m4 under QEMU)."""
    c_program.check_platform(platform)
    code_dir = Path(code_dir)
    raw = np.ascontiguousarray(np.asarray(raw, np.float32).reshape(len(raw), -1), "<f4")
    with tempfile.TemporaryDirectory(prefix="tflmp-raw-") as tmp:
        tmp = Path(tmp)
        exe = _build(code_dir, name, tmp, platform)
        (tmp / "raw_in.bin").write_bytes(np.array(raw.shape, "<i4").tobytes() + raw.tobytes())
        c_program.run(exe, platform, tmp, "the raw-input code", "raw-input PASS")
        out = np.fromfile(tmp / "raw_out.bin", np.int8).reshape(len(raw), 2, raw.shape[1])
    return RawInputRun(out[:, 0].copy(), out[:, 1].copy())


def raw_input_size(code_dir: str | Path, name: str) -> RawInputSize:
    """Cortex-M4 flash and RAM of one sample's raw -> int8 code (``arm-none-eabi-size``)."""
    code_dir = Path(code_dir)
    with tempfile.TemporaryDirectory(prefix="tflmp-raw-") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(_SIZE_PROBE.format(header=f"{name}_model_settings.h", name=name,
                                          macro=name.upper()))
        obj = c_program.cortex_m4_object(src, [*C_FLAGS, f"-I{code_dir}"],
                                         src.with_suffix(".o"), "the raw-input code")
        sections = _section_sizes(obj)
    code = sum(v for k, v in sections.items() if k.startswith(".text"))
    constants = sum(v for k, v in sections.items() if k.startswith(".rodata"))
    ram = sum(v for k, v in sections.items() if k.startswith((".data", ".bss")))
    return RawInputSize(code, constants, _libm_symbol_size("roundf"), ram)


def _section_sizes(obj: Path) -> dict[str, int]:
    out = c_program.size(obj, "-A")
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def _libm_symbol_size(symbol: str) -> int:
    """Size of a function in the newlib libm the Cortex-M4F (hard float) links."""
    gcc = c_program.tool("arm-none-eabi-gcc")
    libm = subprocess.run([gcc, *CM4_FLAGS, "-print-file-name=libm.a"], capture_output=True,
                          text=True, check=True).stdout.strip()
    out = subprocess.run([c_program.tool("arm-none-eabi-nm"), "-S", "--defined-only", libm],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == symbol:
            return int(parts[1], 16)
    return 0


def _build(code_dir: Path, name: str, tmp: Path, platform: str) -> Path:
    defines = [f"-DRAW_NAME={name}", f'-DRAW_HEADER="{name}_model_settings.h"']
    return c_program.build([firmware_file("check/raw_input_main.c")],
                           [*C_FLAGS, *defines, f"-I{code_dir}"], tmp / "raw_input", platform,
                           "the raw-input code")
