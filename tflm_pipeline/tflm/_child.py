"""The child-process side of :mod:`tflm_pipeline.tflm.interpreter`.

``python -m tflm_pipeline.tflm._child VERB ARGS`` runs TFLM in this process only, so a
crash takes nothing else down.  Files come through a staged folder (the model and
``in<i>.npy`` input arrays; results as ``out<o>_<start>.npy`` or ``tensors.npz``).  The
protocol on stdout: ``run`` and ``tensors`` print the number of samples done so far,
one line at a time, for the parent's progress and stall watch; ``probe`` answers each
arena size read from stdin with ``ok`` or ``fail MESSAGE``; ``allocations`` leaves
TFLM's allocation report on stderr.  An error is one line on stderr and exit code 3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..errors import first_line
from ..tflite.model_info import read_model
from .interpreter import MODEL_FILE, TENSORS_FILE, input_file, output_file


def _load_interpreter(model: bytes, arena_size: int, *, preserve_all_tensors: bool = False):
    from tflite_micro.python.tflite_micro import runtime

    config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors
              else runtime.InterpreterConfig.kAllocationRecording)
    return runtime.Interpreter.from_bytes(model, arena_size=arena_size,
                                          intrepreter_config=config)


def _report_done(count: int) -> None:
    print(count, flush=True)


def run(tmp: str, n_inputs: int, start: int, stop: int, arena_size: int) -> None:
    """Invoke samples ``start`` to ``stop`` and save every output."""
    tmp = Path(tmp)
    model = (tmp / MODEL_FILE).read_bytes()
    it = _load_interpreter(model, arena_size)
    info = read_model(model)
    stateful = any(t.is_variable for t in info.tensors)
    xs = [np.load(tmp / input_file(i), mmap_mode="r") for i in range(n_inputs)]
    outs = None
    last = time.monotonic()
    for s in range(start, stop):
        for i, x in enumerate(xs):
            it.set_input(np.ascontiguousarray(x[s:s + 1]), i)
        it.invoke()
        if outs is None:
            first = [np.asarray(it.get_output(o)) for o in range(len(info.outputs))]
            outs = [np.empty((stop - start, *a.shape[1:]), a.dtype) for a in first]
        for o, out in enumerate(outs):
            out[s - start] = np.asarray(it.get_output(o))[0]
        if stateful:
            it.reset()
        now = time.monotonic()
        if now - last > 0.2 or s == stop - 1:
            _report_done(s - start + 1)
            last = now
    for o, out in enumerate(outs):
        np.save(tmp / output_file(o, start), out)


def probe(model_path: str) -> None:
    """Answer 'does an arena of N bytes work?' for each N read from stdin."""
    model = Path(model_path).read_bytes()
    zeros = [np.zeros((1, *t.shape[1:]), t.dtype) for t in read_model(model).inputs]
    for line in sys.stdin:
        size = int(line)
        try:
            it = _load_interpreter(model, size)
            for i, z in enumerate(zeros):
                it.set_input(z, i)
            it.invoke()
            print("ok", flush=True)
        except RuntimeError as e:
            print(f"fail {str(e).splitlines()[0] if str(e) else ''}", flush=True)


def tensors(tmp: str, n_inputs: int, arena_size: int) -> None:
    """Keep every op output of every sample, saved in one .npz."""
    tmp = Path(tmp)
    model = (tmp / MODEL_FILE).read_bytes()
    info = read_model(model)
    it = _load_interpreter(model, arena_size, preserve_all_tensors=True)
    xs = [np.load(tmp / input_file(i)) for i in range(n_inputs)]
    wanted = sorted({t for op in info.operators for t in op.outputs if t >= 0})
    out = {}
    for s in range(len(xs[0])):
        for i, x in enumerate(xs):
            it.set_input(np.ascontiguousarray(x[s:s + 1]), i)
        it.invoke()
        for t in wanted:
            d = it.GetTensor(t, 0)
            out[f"s{s}_{t}"] = np.asarray(d["tensor_data"]).reshape(d["shape"])
        it.reset()
        _report_done(s + 1)
    np.savez(tmp / TENSORS_FILE, **out)


def allocations(model_path: str, arena_size: int) -> None:
    """One invoke, then TFLM's allocation report on file descriptor 2."""
    model = Path(model_path).read_bytes()
    it = _load_interpreter(model, arena_size)
    for i, t in enumerate(read_model(model).inputs):
        it.set_input(np.zeros((1, *t.shape[1:]), t.dtype), i)
    it.invoke()
    sys.stderr.flush()
    it.print_allocations()  # C++ writes the report to file descriptor 2


_VERBS = {"run": (run, (str, int, int, int, int)), "probe": (probe, (str,)),
          "tensors": (tensors, (str, int, int)), "allocations": (allocations, (str, int))}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in _VERBS:
        return 2
    fn, types = _VERBS[argv[0]]
    try:
        fn(*(t(a) for t, a in zip(types, argv[1:])))
    except (RuntimeError, ValueError) as e:
        print(first_line(e), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
