"""A small C check program built for this host or a Cortex-M4 (``-M mps2-an386`` under
QEMU, files over semihosting, as ``firmware --check``) and run there: how the generated
C (the audio front end, the raw-input code) is measured against Python.  Also the
Cortex-M4 section sizes of an object, for what such code adds to an image."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import TflmpError
from ..firmware_files import path as firmware_file
from .build_check import CM4_FLAGS, qemu_command, qemu_link_flags, run_step

PLATFORMS = ("host", "cortex-m4")


def tool(name: str) -> str:
    """The path of a compiler or QEMU, or a one-line error saying what to install."""
    path = shutil.which(name)
    if path is None:
        raise TflmpError(f"{name} not found: apt-get install gcc gcc-arm-none-eabi "
                         "libnewlib-arm-none-eabi qemu-system-arm")
    return path


def check_platform(platform: str) -> None:
    if platform not in PLATFORMS:
        raise TflmpError(f"unknown platform '{platform}': use {' or '.join(PLATFORMS)}")


def build(sources: list[Path], flags: list[str], out: Path, platform: str, what: str) -> Path:
    """Compile and link ``sources`` into ``out`` (``.elf`` added for the Cortex-M4, with
    the check startup code and linker script); ``what`` names it in errors."""
    if platform == "host":
        run_step([tool("gcc"), *flags, *map(str, sources), "-lm", "-o", str(out)],
                 f"building {what} for the host")
        return out
    elf = out.with_suffix(".elf")
    run_step([tool("arm-none-eabi-gcc"), *CM4_FLAGS, *flags, *qemu_link_flags(),
              str(firmware_file("check/cm4_startup.c")), *map(str, sources), "-lm", "-o",
              str(elf)], f"building {what} for Cortex-M4")
    return elf


def run(exe: Path, platform: str, cwd: Path, what: str, marker: str,
        timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a built program in ``cwd`` (its input and output files); it must exit 0 and
    print ``marker``."""
    cmd = [str(exe)] if platform == "host" else [tool("qemu-system-arm"),
                                                 *qemu_command(exe)[1:]]
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TflmpError(f"{what} timed out on {platform} after {timeout} s") from None
    if r.returncode != 0 or marker not in r.stdout:
        raise TflmpError(f"{what} failed on {platform} (exit {r.returncode}): "
                         f"{(r.stdout + r.stderr).strip()[-300:]}")
    return r


def cortex_m4_object(source: Path, flags: list[str], obj: Path, what: str) -> Path:
    """``source`` compiled for the Cortex-M4 into ``obj`` (to measure its size)."""
    run_step([tool("arm-none-eabi-gcc"), *CM4_FLAGS, *flags, "-c", str(source), "-o", str(obj)],
             f"compiling {what} for Cortex-M4")
    return obj


def size(obj: Path, *options: str) -> str:
    """``arm-none-eabi-size`` of an object (``-A``: per section)."""
    return subprocess.run([tool("arm-none-eabi-size"), *options, str(obj)], capture_output=True,
                          text=True, check=True).stdout
