"""A target's own TFLM build as the harness: the TFLM sources a board links (the same
tree, kernels and flags ``firmware --check`` compiles) built for this host, run over
whole dataset splits in child processes.

The pip interpreter is one TFLM build (reference kernels, one rounding mode); a board
computes with whichever kernels and flags its firmware links.  This module builds a
small command-line runner (``firmware/check/harness_main.cc.j2``) against the tree's
cached static library and the model's own op resolver, and feeds it int8 inputs.  A
crash ends a child process, never tflmp.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..firmware_files import render
from ..progress import Progress
from ..tflite.model_info import ModelInfo
from .build_check import HOST_TOOLCHAIN, Tree, build_library, cache_root, compile_flags, run_step

log = logging.getLogger(__name__)

_EXIT = {2: "could not read its files", 3: "AllocateTensors() failed", 4: "Invoke() failed"}


@dataclass(frozen=True)
class TargetBuild:
    """An executable running one model's ops with one TFLM tree's host build."""

    exe: Path
    tree: Tree
    all_tensors: bool  # built with TFLM's preserve-all-tensors mode (newer trees)

    @property
    def description(self) -> str:
        return f"{self.tree.root} ({self.tree.kernels}), built for this host"


def build_target_harness(tree: Tree, code_dir: Path, name: str, camel: str, work: Path,
                         cache_dir: Path | None = None) -> TargetBuild:
    """Compile the harness runner for the model whose ``<name>_op_resolver.h`` (declaring
    ``<camel>OpResolver``) is in ``code_dir`` and link it with the tree's host library
    (built once, cached)."""
    lib = build_library(HOST_TOOLCHAIN, tree, cache_dir or cache_root())
    main = work / "harness_main.cc"
    main.write_text(render("check/harness_main.cc.j2", name=name, camel=camel))
    exe = work / "harness"
    extra = [work / "debug_log_harness.cc"] if tree.debug_log else []
    if tree.debug_log:
        extra[0].write_text(tree.debug_log)
    for all_tensors in (True, False):  # older trees lack preserve-all-tensors
        cmd = [HOST_TOOLCHAIN.cxx, *compile_flags(HOST_TOOLCHAIN, tree, False), f"-I{code_dir}",
               *(["-DTFLMP_ALL_TENSORS"] if all_tensors else []), str(main), *map(str, extra),
               str(lib), "-Wl,--gc-sections", "-lm", "-o", str(exe)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return TargetBuild(exe, tree, all_tensors)
    run_step(cmd, "compiling the target harness")  # raises with the compiler's first error
    raise AssertionError("unreachable")


def run_outputs(build: TargetBuild, model: Path, info: ModelInfo, inputs: np.ndarray,
                arena_bytes: int, *, workers: int | None = None,
                label: str = "target TFLM") -> np.ndarray:
    """The output tensor of each input (already in the input tensor's type), computed by
    the target build in ``workers`` child processes."""
    t_in, t_out = info.inputs[0], info.outputs[0]
    inputs = np.ascontiguousarray(inputs.reshape((-1, *t_in.shape[1:])).astype(t_in.dtype))
    n = len(inputs)
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    chunks = np.array_split(np.arange(n), workers)
    progress = Progress(n, label, summary_after=2.0)
    done = [0]

    with tempfile.TemporaryDirectory(prefix="tflmp-target-") as tmp:
        tmp = Path(tmp)

        def one(k: int, rows: np.ndarray) -> np.ndarray:
            src, dst = tmp / f"in{k}.bin", tmp / f"out{k}.bin"
            src.write_bytes(inputs[rows].tobytes())
            r = subprocess.run([str(build.exe), str(model), str(arena_bytes), str(src),
                                str(dst)], capture_output=True, text=True)
            _check_exit(r, label)
            out = np.frombuffer(dst.read_bytes(), t_out.dtype)
            done[0] += len(rows)
            progress.update(done[0])
            return out.reshape((len(rows), *t_out.shape[1:]))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(one, range(workers), chunks))
    progress.close()
    outputs = np.concatenate(parts)
    if len(outputs) != n:
        raise TflmpError(f"{label}: {len(outputs)} outputs for {n} inputs")
    return outputs


def run_tensors(build: TargetBuild, model: Path, info: ModelInfo, inputs: np.ndarray,
                arena_bytes: int) -> list[dict[int, np.ndarray]] | None:
    """Every tensor the target build holds after each input, ``[{index: array}, ...]``
    (None when the tree has no preserve-all-tensors mode)."""
    if not build.all_tensors:
        return None
    t_in = info.inputs[0]
    inputs = np.ascontiguousarray(inputs.reshape((-1, *t_in.shape[1:])).astype(t_in.dtype))
    with tempfile.TemporaryDirectory(prefix="tflmp-target-") as tmp:
        tmp = Path(tmp)
        (tmp / "in.bin").write_bytes(inputs.tobytes())
        r = subprocess.run([str(build.exe), str(model), str(arena_bytes), str(tmp / "in.bin"),
                            str(tmp / "out.bin"), str(tmp / "all.bin")],
                           capture_output=True, text=True)
        _check_exit(r, "target TFLM tensors")
        data = (tmp / "all.bin").read_bytes()
    samples, pos, current, last = [], 0, {}, -1
    while pos < len(data):
        index, size = np.frombuffer(data[pos:pos + 8], np.int32)
        pos += 8
        if index <= last:  # the next input's tensors start again at a low index
            samples.append(current)
            current = {}
        last = int(index)
        tensor = info.tensors[index]
        current[int(index)] = np.frombuffer(data[pos:pos + size], tensor.dtype).copy()
        pos += int(size)
    samples.append(current)
    return samples


def _check_exit(r: subprocess.CompletedProcess, label: str) -> None:
    if r.returncode == 0:
        return
    what = (f"was killed by signal {-r.returncode}" if r.returncode < 0
            else _EXIT.get(r.returncode, f"exited with {r.returncode}"))
    detail = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    raise TflmpError(f"{label} {what}" + (f": {detail}" if detail else ""))
