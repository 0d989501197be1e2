"""A TFLM tree's Cortex-M4 build as a harness under QEMU: the same runner as
:mod:`target_harness` (``firmware/check/harness_main.cc.j2``), cross-compiled against the
tree's cached Cortex-M4 library (the library ``firmware --check`` builds) and run on
QEMU's mps2-an386 with ``-icount shift=0``.  Its files travel over semihosting; it
prints the timer ticks of every ``Invoke()``, which are counted instructions, and those
of each op of the first one (TFLM's profiler interface).

It serves ``tflmp verify --qemu N`` (N samples on the 32-bit target, outputs compared
with the pip interpreter byte for byte) and the latency calibration bench (instructions
per inference of the published models on the published software).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..firmware_files import render
from ..tflite.model_info import ModelInfo
from .build_check import (CORTEX_M4_TOOLCHAIN as CORTEX_M4, TICK_INSTRUCTIONS, Tree,
                          build_library, cache_root, compile_flags, cortex_m4_startup,
                          op_instructions, qemu_command, qemu_link_flags,
                          require_cortex_m4_tools, run_step)

log = logging.getLogger(__name__)

QEMU_TIMEOUT_S = 600
# Tried in order: the generated resolver on today's API, then every op with the
# ErrorReporter-taking constructor of TFLM <= 2.4 (whose resolver API the generated one
# does not match).
_API_VARIANTS = ([], ["-DTFLMP_ALL_OPS", "-DTFLMP_LEGACY_API"])


@dataclass(frozen=True)
class QemuRun:
    """Outputs and counted instructions of inputs run on the Cortex-M4 under QEMU."""

    outputs: np.ndarray  # the output tensor of each input
    instructions: list[int]  # per Invoke(), resolution TICK_INSTRUCTIONS
    # per op of the first Invoke() (index, op, instructions); None on TFLM <= 2.4
    op_instructions: list[dict] | None = None

    @property
    def median_instructions(self) -> int:
        return int(np.median(self.instructions))


def sample_indices(n_total: int, n: int) -> list[int]:
    """``n`` sample indices spread evenly over a split of ``n_total`` (first and last
    included), so a few samples see the whole split, and the same ones every run."""
    if n < 1:
        raise TflmpError(f"--qemu needs a number of samples >= 1, got {n}")
    if n >= n_total:
        return list(range(n_total))
    if n == 1:
        return [0]
    return sorted({round(i * (n_total - 1) / (n - 1)) for i in range(n)})


def invoke_instructions(output: str) -> list[int]:
    """Instructions of each ``Invoke()`` from the QEMU harness's output lines
    ``tflmp-harness: invoke TICKS ticks``."""
    return [int(t) * TICK_INSTRUCTIONS
            for t in re.findall(r"^tflmp-harness: invoke (\d+) ticks\s*$", output, re.MULTILINE)]


def build_qemu_harness(tree: Tree, code_dir: Path | None, name: str, camel: str, work: Path,
                       arena_bytes: int, cache_dir: Path | None = None) -> Path:
    """The harness ELF for the Cortex-M4: the model's resolver from ``code_dir`` (or every
    op, on trees older than its API), ``arena_bytes`` of arena, linked with the tree's
    Cortex-M4 library (built once, cached)."""
    require_cortex_m4_tools()
    lib = build_library(CORTEX_M4, tree, cache_dir or cache_root())
    main = work / "qemu_harness_main.cc"
    main.write_text(render("check/harness_main.cc.j2", name=name, camel=camel))
    startup = cortex_m4_startup(work)
    extra = []
    if tree.debug_log:
        extra = [work / "debug_log_qemu.cc"]
        extra[0].write_text(tree.debug_log)
    elf = work / "harness.elf"
    includes = [f"-I{code_dir}"] if code_dir is not None else []
    variants = _API_VARIANTS if code_dir is not None else _API_VARIANTS[1:]
    for variant in variants:
        cmd = [CORTEX_M4.cxx, *compile_flags(CORTEX_M4, tree, False), *includes,
               "-DTFLMP_FIXED_ARGS", f"-DTFLMP_FIXED_ARENA={arena_bytes}", *variant,
               *qemu_link_flags(), str(startup),
               str(main), *map(str, extra), str(lib), "-lm", "-o", str(elf)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return elf
    run_step(cmd, "compiling the Cortex-M4 harness")  # raises with the first error
    raise AssertionError("unreachable")


def run_qemu(elf: Path, model: Path, info: ModelInfo, inputs: np.ndarray) -> QemuRun:
    """Run ``inputs`` (already in the input tensor's type) through the harness ELF on
    QEMU, in a child process with a timeout."""
    t_in, t_out = info.inputs[0], info.outputs[0]
    inputs = np.ascontiguousarray(inputs.reshape((-1, *t_in.shape[1:])).astype(t_in.dtype))
    with tempfile.TemporaryDirectory(prefix="tflmp-qemu-") as tmp:
        tmp = Path(tmp)
        shutil.copyfile(model, tmp / "model.tflite")
        (tmp / "in.bin").write_bytes(inputs.tobytes())
        try:
            r = subprocess.run(qemu_command(elf), cwd=tmp, capture_output=True, text=True,
                               timeout=QEMU_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise TflmpError(f"the Cortex-M4 harness did not finish in {QEMU_TIMEOUT_S} s "
                             "under QEMU; pass fewer samples") from None
        out_file = tmp / "out.bin"
        data = out_file.read_bytes() if out_file.is_file() else b""
    if r.returncode != 0:
        detail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or [""]
        raise TflmpError(f"the Cortex-M4 harness exited with {r.returncode} under QEMU: "
                         f"{detail[0]}")
    outputs = np.frombuffer(data, t_out.dtype).reshape((-1, *t_out.shape[1:]))
    counts = invoke_instructions(r.stdout)
    if len(outputs) != len(inputs) or len(counts) != len(inputs):
        raise TflmpError(f"the Cortex-M4 harness returned {len(outputs)} outputs and "
                         f"{len(counts)} counts for {len(inputs)} inputs")
    return QemuRun(outputs, counts, op_instructions(r.stdout))
