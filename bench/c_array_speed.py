"""C-array generation speed: `tflmp convert MODEL --c-array` against `xxd -i MODEL OUT`
on the same file, for a 1 MB and a 10 MB model.

    python bench/c_array_speed.py --shared ../shared

The models are TFLM's hello_world with an extra constant buffer appended (a valid
flatbuffer of the wanted size: what matters for a C array is the byte count).  Both
sides run as command-line processes writing a file, as a user would run them; tflmp
also validates the flatbuffer, writes the header, settings and op-resolver files and
fsyncs each (atomic writes).  The in-process time of the Python API
(`write_c_array`) is given beside it, and so is the start-up floor: Python starting
and importing only what the CLI cannot do without (click for the command line,
flatbuffers for the validation, which imports NumPy).  Medians of --repeat; results go
to bench/results/c_array_speed.json.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def sized_model(source: bytes, size: int) -> bytes:
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(source, 0))
    extra = schema.BufferT()
    extra.data = np.random.default_rng(0).integers(0, 256, size - len(source) - 64,
                                                   dtype=np.uint8)
    model.buffers.append(extra)
    builder = flatbuffers.Builder(size + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def timed(cmd, repeat: int, **kw) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, **kw)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    from tflm_pipeline.codegen.c_array import write_c_array

    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    source = (args.shared / "models" / "hello_world_int8.tflite").read_bytes()
    rows = []
    floor = timed([sys.executable, "-c", "import click, flatbuffers"], args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mb in (1, 10):
            path = tmp / f"model_{mb}mb.tflite"
            path.write_bytes(sized_model(source, mb * 1_000_000))
            tflmp = timed([sys.executable, "-m", "tflm_pipeline.cli", "convert", str(path),
                           "--c-array", "--name", "m", "--out", str(tmp / "c")], args.repeat)
            xxd = timed(["xxd", "-i", str(path), str(tmp / "xxd.cc")], args.repeat)
            api = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                write_c_array(path.read_bytes(), "m", tmp / "api")
                api.append(time.perf_counter() - t)
            cc = (tmp / "c" / "m_model_data.cc").stat().st_size
            rows.append({"model_bytes": path.stat().st_size, "tflmp_cli_s": round(tflmp, 3),
                         "xxd_s": round(xxd, 3), "ratio": round(tflmp / xxd, 2),
                         "tflmp_api_s": round(float(np.median(api)), 3),
                         "api_ratio": round(float(np.median(api)) / xxd, 2),
                         "startup_floor_s": round(floor, 3),
                         "floor_ratio": round(floor / xxd, 2),
                         "tflmp_cc_bytes": cc, "xxd_bytes": (tmp / "xxd.cc").stat().st_size})
            print(rows[-1], flush=True)
    result = {"date": date.today().isoformat(), "machine": platform.machine(),
              "python": platform.python_version(), "rows": rows,
              "note": "the CLI time includes Python start-up and imports, flatbuffer validation "
                      "and three more files; the API time is the .h/.cc alone; the start-up "
                      "floor is `python -c 'import click, flatbuffers'`"}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "c_array_speed.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
