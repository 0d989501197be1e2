"""Run a generated project's audio front end (``<name>_audio_frontend.c`` with
``tflmp_audio_frontend.c``) on this host or on a Cortex-M4 under QEMU, and measure what it
adds to a Cortex-M4 image: the evidence that device features equal training features.

The harness (``firmware/check/frontend_main.c``) reads clips from a file and writes the
features back, over semihosting under QEMU (``-M mps2-an386``, as ``firmware --check``).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..firmware_files import path as firmware_file
from . import c_program

C_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wno-unused-variable",
           "-Wno-unused-function", "-ffunction-sections", "-fdata-sections"]


@dataclass(frozen=True)
class FrontendSize:
    """Bytes the front end adds to a Cortex-M4 image (arm-none-eabi-gcc -O2)."""

    code: int  # tflmp_audio_frontend.c: .text
    tables: int  # <name>_audio_frontend.c: const tables and config (.rodata)
    ram: int  # .data + .bss of both (0: all state is the caller's scratch)
    scratch: int  # work + mel buffers the caller provides per call

    @property
    def flash(self) -> int:
        return self.code + self.tables

    def to_dict(self) -> dict:
        return {"code": self.code, "tables": self.tables, "flash": self.flash,
                "ram": self.ram, "scratch": self.scratch}


@dataclass(frozen=True)
class FrontendRun:
    """What a project's front end computed on one platform."""

    features: np.ndarray  # int16 (N, frames, values)
    inputs: np.ndarray | None  # int8 model inputs of those features (N, frames, values)
    levels: np.ndarray | None  # int8 model input of every int16 feature, -32768 first


def run_frontend(code_dir: str | Path, name: str, pcm: np.ndarray, *,
                 platform: str = "host") -> FrontendRun:
    """int16 PCM (N, samples) through the project's C, compiled for ``platform`` (host or
    cortex-m4 under QEMU): the features and, when the project maps features to int8
    model inputs (``<name>_feature_to_input``), those inputs."""
    c_program.check_platform(platform)
    code_dir = Path(code_dir)
    pcm = np.ascontiguousarray(np.atleast_2d(pcm), "<i2")
    with tempfile.TemporaryDirectory(prefix="tflmp-frontend-") as tmp:
        tmp = Path(tmp)
        exe = _build(code_dir, name, tmp, platform)
        (tmp / "frontend_in.bin").write_bytes(
            np.array(pcm.shape, "<i4").tobytes() + pcm.tobytes())
        c_program.run(exe, platform, tmp, "the front end", "frontend PASS")
        data = (tmp / "frontend_out.bin").read_bytes()
        frames, values = np.frombuffer(data[:8], "<i4")
        features = np.frombuffer(data[8:], "<i2").reshape(len(pcm), frames, values).copy()
        inputs = levels = None
        if (tmp / "frontend_levels.bin").is_file():
            inputs = np.fromfile(tmp / "frontend_inputs.bin", np.int8).reshape(features.shape)
            levels = np.fromfile(tmp / "frontend_levels.bin", np.int8)
    return FrontendRun(features, inputs, levels)


def frontend_size(code_dir: str | Path, name: str) -> FrontendSize:
    """Cortex-M4 flash and RAM of the front end (``arm-none-eabi-size`` of its objects)."""
    code_dir = Path(code_dir)
    sizes = []
    with tempfile.TemporaryDirectory(prefix="tflmp-frontend-") as tmp:
        for src in (code_dir / "tflmp_audio_frontend.c", code_dir / f"{name}_audio_frontend.c"):
            obj = c_program.cortex_m4_object(src, [*C_FLAGS, f"-I{code_dir}"],
                                             Path(tmp) / (src.stem + ".o"), src.name)
            out = c_program.size(obj).splitlines()[-1].split()
            sizes.append([int(v) for v in out[:3]])  # text, data, bss
    header = (code_dir / f"{name}_model_settings.h").read_text()
    fft = int(re.search(rf"#define {name.upper()}_FEATURE_FFT_LENGTH (\d+)", header).group(1))
    bands = int(re.search(rf"#define {name.upper()}_FEATURE_NUM_MEL_BINS (\d+)", header).group(1))
    return FrontendSize(sizes[0][0], sizes[1][0], sum(s[1] + s[2] for s in sizes),
                        8 * fft + 8 * bands)


def _build(code_dir: Path, name: str, tmp: Path, platform: str) -> Path:
    sources = [firmware_file("check/frontend_main.c"), code_dir / "tflmp_audio_frontend.c",
               code_dir / f"{name}_audio_frontend.c"]
    defines = [f"-DFRONTEND_NAME={name}", f'-DFRONTEND_HEADER="{name}_audio_frontend.h"']
    if f"{name}_feature_to_input(" in (code_dir / f"{name}_audio_frontend.h").read_text():
        defines.append("-DFRONTEND_INPUTS")
    return c_program.build(sources, [*C_FLAGS, *defines, f"-I{code_dir}"], tmp / "frontend",
                           platform, "the front end")
