"""TFLM evaluation throughput: the harness (tflm_pipeline.tflm.interpreter.run, one child process
per core) against the plain way, one process invoking the TFLM interpreter per sample.

    python bench/tflm_throughput.py --model runs/lenet-mnist \\
        --data-dir ../shared/datasets/mnist [--samples 10000] [--repeat 3]

Both sides run the same int8 model on the same quantized MNIST test images and must
produce identical outputs.  Results go to bench/results/tflm_throughput.json.
"""

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def plain_loop(model: bytes, x: np.ndarray, arena_size: int) -> np.ndarray:
    """What a user writes without tflmp: one interpreter, one invoke per sample."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    out = []
    for s in range(len(x)):
        it.set_input(x[s:s + 1], 0)
        it.invoke()
        out.append(np.asarray(it.get_output(0))[0].copy())
    return np.stack(out)


def main():
    from tflm_pipeline.data import load_dataset
    from tflm_pipeline.runs import resolve
    from tflm_pipeline.tflite.model_info import read_model, read_model_bytes
    from tflm_pipeline.tflite.quant import quantize
    from tflm_pipeline.tflm.interpreter import available_cpus, find_arena_size, run

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="an MNIST run folder or its int8 .tflite")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    src = resolve(args.model)
    model = read_model_bytes(src.model_path)
    info = read_model(model)
    ds = load_dataset("mnist", data_dir=args.data_dir)
    x = (src.preprocessing or ds.preprocessing).apply(ds.x_test[:args.samples])
    q = quantize(x.reshape((-1, *info.inputs[0].shape[1:])), info.inputs[0])
    arena = find_arena_size(model, info=info).bytes
    cpus = available_cpus()
    plain_s, harness_s = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        ref = plain_loop(model, q, arena)
        plain_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = run(model, q, info=info, arena_size=arena, workers=cpus)[0]
        harness_s.append(time.perf_counter() - t)
        assert np.array_equal(ref, got), "the harness and the plain loop disagree"
    result = {
        "date": date.today().isoformat(), "machine": platform.machine(),
        "cpus": cpus, "os_cpus": os.cpu_count(), "model": f"{src.model_path.parent.name}/{src.model_path.name}",
        "model_bytes": info.size, "samples": len(q),
        "plain_loop_s": [round(s, 2) for s in plain_s],
        "harness_s": [round(s, 2) for s in harness_s],
        "speedup_median": round(float(np.median(plain_s) / np.median(harness_s)), 2),
        "plain_samples_per_s": round(len(q) / float(np.median(plain_s))),
        "harness_samples_per_s": round(len(q) / float(np.median(harness_s))),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "tflm_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
