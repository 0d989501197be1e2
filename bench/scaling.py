"""How convert and verify cost grows with the model: lenet -> resnet8 -> mobilenet_v1 at
their reference shapes.

    python bench/scaling.py [--samples 1000]

For each model (weights after one epoch on random data, as in bench/zoo.py): full-int8
conversion calibrated on 100 samples, C sources (`write_model_sources`), the arena
bisection, and `emulate.run` of --samples inputs on all cores.  Results go to
bench/results/scaling.json.
"""

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = {"lenet": ((28, 28, 1), 10), "resnet8": ((32, 32, 3), 10),
          "mobilenet_v1": ((96, 96, 3), 2)}


def main():
    from tflm_pipeline import convert
    from tflm_pipeline.models import build_model
    from tflm_pipeline.quantize.int8 import to_int8_tflite
    from tflm_pipeline.tflite.layers import totals
    from tflm_pipeline.tflite.model_info import read_model
    from tflm_pipeline.tflite.quant import quantize
    from tflm_pipeline.tflm.interpreter import find_arena_size, run

    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    rows = []
    rng = np.random.default_rng(0)
    for name, (shape, classes) in MODELS.items():
        model = build_model(name, shape, classes)
        x = rng.random((256, *shape), dtype=np.float32)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, rng.integers(0, classes, len(x)), epochs=1, batch_size=32, verbose=0)
        t = time.perf_counter()
        flatbuffer = to_int8_tflite(model, x[:100])
        t_convert = time.perf_counter() - t
        info = read_model(flatbuffer)
        with tempfile.TemporaryDirectory() as tmp:
            model_path = Path(tmp) / f"{name}.tflite"
            model_path.write_bytes(flatbuffer)
            t = time.perf_counter()
            convert(model_path, Path(tmp) / "c", c_array=True)
            t_c = time.perf_counter() - t
        t = time.perf_counter()
        arena = find_arena_size(flatbuffer, info=info).bytes
        t_arena = time.perf_counter() - t
        q = quantize(rng.random((args.samples, *shape), dtype=np.float32), info.inputs[0])
        t = time.perf_counter()
        run(flatbuffer, q, info=info, arena_size=arena)
        t_run = time.perf_counter() - t
        rows.append({"model": name, "input": "x".join(map(str, shape)),
                     "macs": totals(info)["macs"], "tflite_bytes": info.size,
                     "convert_s": round(t_convert, 2), "c_sources_s": round(t_c, 3),
                     "arena_search_s": round(t_arena, 2), "tflm_run_s": round(t_run, 2),
                     "tflm_ms_per_sample": round(1e3 * t_run / args.samples, 3)})
        print(rows[-1], flush=True)
    result = {"date": date.today().isoformat(), "machine": platform.machine(),
              "samples": args.samples, "rows": rows}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "scaling.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
