"""Run models in the real TensorFlow Lite Micro interpreter, in child processes.

The TFLM interpreter (``tflite-micro`` package) is what a microcontroller runs, so
every device claim comes from here, never from the desktop ``tf.lite`` interpreter.
TFLM can take its process down on a malformed model or a too-small arena, so it only
ever runs in child processes (``python -m tflm_pipeline.tflm._child``, see there for
the protocol): the caller survives, gets a one-line error, and all CPU cores are used.

This module imports neither TensorFlow nor the TFLM runtime at import time; child
processes start in about a quarter of a second.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..progress import Progress
from ..tflite.model_info import ModelInfo, read_model

# A child that reports no finished sample for this long is considered hung.
STALL_SECONDS = 60.0
# Fewer samples than this per extra process are not worth a process start-up.
MIN_SAMPLES_PER_WORKER = 500
ARENA_ALIGNMENT = 16
MAX_ARENA = 1 << 30
CHILD = "tflm_pipeline.tflm._child"
MODEL_FILE = "model.tflite"
TENSORS_FILE = "tensors.npz"


@dataclass(frozen=True)
class ArenaSize:
    """Smallest tensor arena with which TFLM prepares and runs the model."""

    bytes: int
    basis: str

    def to_dict(self) -> dict:
        return {"arena_bytes": self.bytes, "arena_basis": self.basis}


def tflm_version() -> str:
    """The installed tflite-micro package's version."""
    from importlib.metadata import version

    return version("tflite-micro")


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run(model: bytes, inputs: np.ndarray | list[np.ndarray], *, info: ModelInfo | None = None,
        arena_size: int | None = None, workers: int | None = None,
        label: str = "TFLM") -> list[np.ndarray]:
    """Invoke TFLM once per sample; return each output tensor stacked over samples.

    ``inputs`` holds one array per model input, batch axis first, already in the input
    tensor's type (see :func:`quantize`).  Samples are split over ``workers`` child
    processes (default: all CPUs).
    """
    info = info or read_model(model)
    inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    _check_inputs(info, inputs)
    n = len(inputs[0])
    if arena_size is None:
        arena_size = find_arena_size(model, info=info).bytes
    if workers is None:
        workers = available_cpus()
    workers = max(1, min(workers, n // MIN_SAMPLES_PER_WORKER or 1))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    with _staged(model, inputs) as tmp:
        procs = []
        for w in range(workers):
            cmd = [sys.executable, "-m", CHILD, "run", str(tmp),
                   str(len(inputs)), str(bounds[w]), str(bounds[w + 1]), str(arena_size)]
            procs.append(_spawn(cmd))
        _watch(procs, n, label)
        outputs = []
        for o in range(len(info.outputs)):
            outputs.append(np.concatenate([np.load(tmp / output_file(o, bounds[w]))
                                           for w in range(workers)]))
    return outputs


def find_arena_size(model: bytes, *, info: ModelInfo | None = None) -> ArenaSize:
    """Bisect the smallest arena (16-byte steps) with which TFLM prepares and invokes.

    Probes run in a child process that is restarted when a probe crashes it (a crash
    counts as "too small").  The figure is for this 64-bit host; a 32-bit MCU needs
    less bookkeeping (pointers are half as wide) for the same activation buffers.
    """
    info = info or read_model(model)
    with _staged(model) as tmp:
        prober = _Prober(tmp / MODEL_FILE)
        # one tick per probe: doubling from 16 KiB, then bisecting to 16 bytes (~20)
        progress = Progress(20, "finding the TFLM arena size", summary_after=2.0)
        try:
            hi = max(16 * 1024, _round_up(2 * max(t.nbytes for t in info.tensors)))
            while not prober.fits(hi):
                progress.update(progress.done + 1)
                if prober.crashed is not None and hi >= 64 * max(t.nbytes for t in info.tensors):
                    raise TflmpError(
                        f"the TFLM interpreter aborts on this model (signal {prober.crashed}) "
                        f"with any arena up to {hi:,} bytes: an op's quantization is outside "
                        "what TFLM accepts (e.g. a softmax whose input scale is "
                        f"{_smallest_scale(info):.2g}: the layer before it outputs ~constant "
                        "values on the calibration data); check the model's training")
                if hi >= MAX_ARENA:
                    raise TflmpError(
                        f"TFLM cannot run this model even with a {MAX_ARENA >> 20} MiB arena: "
                        f"{prober.last_error or 'allocation failed'}")
                hi *= 2
            lo = 0  # known to fail (or untested at 0)
            while hi - lo > ARENA_ALIGNMENT:
                mid = _round_up((lo + hi) // 2)
                if mid >= hi:
                    break
                if prober.fits(mid):
                    hi = mid
                else:
                    lo = mid
                progress.update(progress.done + 1)
        finally:
            prober.close()
        progress.update(progress.total)
        progress.close()
    return ArenaSize(hi, f"64-bit host, tflite-micro {tflm_version()} Python interpreter "
                         "(a 32-bit MCU build needs less)")


@dataclass(frozen=True)
class HostAllocations:
    """What TFLM's RecordingMicroAllocator reports on this host after one invoke."""

    head: int  # non-persistent: the memory planner's activation buffers
    tail: int  # persistent: tensors' bookkeeping, node structs, kernel data
    categories: dict  # name -> {"used": bytes, "requested": bytes, "count": n}


def recorded_allocations(model: bytes, arena_size: int) -> HostAllocations:
    """Run TFLM once in a child process and parse its allocation report."""
    import re

    with _staged(model) as tmp:
        proc = _spawn([sys.executable, "-m", CHILD, "allocations", str(tmp / MODEL_FILE),
                       str(arena_size)])
        try:
            proc.communicate(timeout=STALL_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            raise TflmpError(_failure_message(proc))
        proc.stderr_file.seek(0)
        text = proc.stderr_file.read().decode("utf-8", "replace")
        proc.stderr_file.close()
    sizes = dict(re.findall(r"Arena allocation (head|tail) (\d+) bytes", text))
    categories = {m[0]: {"used": int(m[1]), "requested": int(m[2]), "count": int(m[3])}
                  for m in re.findall(r"'([^']+)' used (\d+) bytes with alignment overhead "
                                      r"\(requested (\d+) bytes for (\d+)", text)}
    if "head" not in sizes:
        raise TflmpError("the TFLM runtime printed no allocation report")
    return HostAllocations(int(sizes["head"]), int(sizes["tail"]), categories)


def _smallest_scale(info: ModelInfo) -> float:
    scales = [t.scales[0] for t in info.tensors if t.scales and not t.is_constant]
    return min(scales) if scales else 0.0


def all_tensors(model: bytes, inputs: list[np.ndarray] | np.ndarray, *,
                info: ModelInfo | None = None, arena_size: int | None = None) -> list[dict]:
    """Every op output TFLM computes, per sample: ``[{tensor index: array}, ...]``.

    Runs TFLM's preserve-all-tensors mode in a child process, one sample at a time.
    """
    info = info or read_model(model)
    inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    _check_inputs(info, inputs)
    if info.offline_plan is not None:
        # preserve-all-tensors plans linearly and TFLM's linear planner refuses offline
        # offsets; the plan places tensors, it never changes a value
        from ..tflite.offline_plan import strip

        model = strip(model)
    if arena_size is None:
        arena_size = 2 * sum(t.nbytes for t in info.tensors if not t.is_constant) + (1 << 20)
    with _staged(model, inputs) as tmp:
        proc = _spawn([sys.executable, "-m", CHILD, "tensors", str(tmp),
                       str(len(inputs)), str(arena_size)])
        _watch([proc], len(inputs[0]), "TFLM tensors")
        with np.load(tmp / TENSORS_FILE) as z:
            return [{int(k.split("_")[1]): z[k] for k in z.files if k.startswith(f"s{n}_")}
                    for n in range(len(inputs[0]))]


@contextlib.contextmanager
def _staged(model: bytes, inputs: list[np.ndarray] = ()):
    """A temporary folder holding the model and its input arrays, as the child reads them."""
    with tempfile.TemporaryDirectory(prefix="tflmp-") as tmp:
        tmp = Path(tmp)
        (tmp / MODEL_FILE).write_bytes(model)
        for i, x in enumerate(inputs):
            np.save(tmp / input_file(i), np.ascontiguousarray(x))
        yield tmp


def input_file(i: int) -> str:
    """File name of the i-th input array in a staged folder."""
    return f"in{i}.npy"


def output_file(o: int, start: int) -> str:
    """File name of output ``o`` of the samples from ``start`` on in a staged folder."""
    return f"out{o}_{start}.npy"


def _round_up(n: int) -> int:
    return -(-n // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


def _check_inputs(info: ModelInfo, inputs: list[np.ndarray]) -> None:
    if len(inputs) != len(info.inputs):
        raise TflmpError(f"model has {len(info.inputs)} inputs, got {len(inputs)} arrays")
    n = len(inputs[0])
    for t, x in zip(info.inputs, inputs):
        if len(x) != n:
            raise TflmpError("all input arrays need the same number of samples")
        if t.dtype is None or x.dtype != t.dtype:
            raise TflmpError(f"input '{t.name}' is {t.type}; got {x.dtype} data "
                             "(quantize float inputs with tflite.quant.quantize)")
        if tuple(x.shape[1:]) != tuple(t.shape[1:]):
            raise TflmpError(f"input '{t.name}' has shape {list(t.shape)}, got samples of "
                             f"shape {list(x.shape[1:])}")
    if n == 0:
        raise TflmpError("no samples to run")


def _spawn(cmd) -> subprocess.Popen:
    # stderr goes to a file: a chatty child must never block on a full pipe.
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                            text=True, bufsize=1)
    proc.stderr_file = err
    return proc


def _watch(procs: list[subprocess.Popen], total: int, label: str) -> None:
    """Follow the children's progress lines; fail clearly on a crash or a stall."""
    progress = Progress(total, label, enabled=total >= 1000)
    done = [0] * len(procs)
    sel = selectors.DefaultSelector()
    for k, p in enumerate(procs):
        sel.register(p.stdout, selectors.EVENT_READ, k)
    open_streams = len(procs)
    last = time.monotonic()
    try:
        while open_streams:
            events = sel.select(timeout=1.0)
            for key, _ in events:
                line = key.fileobj.readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                done[key.data] = int(line)
                last = time.monotonic()
            progress.update(sum(done))
            if time.monotonic() - last > STALL_SECONDS:
                raise TflmpError(f"TFLM made no progress for {STALL_SECONDS:.0f} s and was "
                                 "stopped; the model may be corrupt")
        for p in procs:
            p.wait()
            if p.returncode != 0:
                raise TflmpError(_failure_message(p))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for stream in (p.stdin, p.stdout, p.stderr_file):
                stream.close()
        sel.close()
    progress.close()


def _failure_message(p: subprocess.Popen) -> str:
    p.stderr_file.seek(0)
    err = p.stderr_file.read().decode("utf-8", "replace")
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    detail = lines[-1] if lines else ""
    if p.returncode < 0:
        return (f"the TFLM interpreter crashed (signal {-p.returncode}) on this model"
                + (f": {detail}" if detail else "") + "; the model is malformed or unsupported")
    return f"TFLM could not run the model: {detail or f'exit code {p.returncode}'}"


class _Prober:
    """A child process answering 'does an arena of N bytes work?' questions."""

    def __init__(self, model_path: Path):
        self.model_path = model_path
        self.proc = None
        self.last_error = ""
        self.crashed = None  # signal number of the last probe that crashed the child

    def fits(self, size: int) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = _spawn([sys.executable, "-m", CHILD, "probe",
                                str(self.model_path)])
        try:
            self.proc.stdin.write(f"{size}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.proc = None
            return False
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=STALL_SECONDS)
        sel.close()
        answer = self.proc.stdout.readline().strip() if ready else ""
        if answer == "ok":
            self.crashed = None
            return True
        if answer.startswith("fail"):
            self.last_error = answer[5:]
            self.crashed = None
            return False
        # Crashed (too small an arena can do that) or hung: start afresh next time.
        self.proc.wait(timeout=5) if ready else None
        self.crashed = -self.proc.returncode if (self.proc.returncode or 0) < 0 else None
        self.close()
        return False

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr_file):
                stream.close()
            self.proc = None
