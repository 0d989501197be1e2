"""End-to-end LeNet/MNIST: `tflmp train` (6 float + 2 QAT epochs) against the plain script
(bench/baseline_plain.py) in the same session, on the same machine.

    python bench/e2e_mnist.py --data-dir ../shared/datasets/mnist [--skip-baseline]

Writes bench/results/e2e_mnist.json and prints a Markdown row for docs/BENCHMARKS.md.
Run it on an otherwise idle machine.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    result = {"date": date.today().isoformat(), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", "train", "--model", "lenet",
                        "--dataset", "mnist", "--data-dir", data_dir, "--epochs", "6",
                        "--qat-epochs", "2", "--seed", str(args.seed), "--out", str(run)],
                       check=True, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - t
        report = json.loads((run / "report.json").read_text())
    m = report["metrics"]
    result["tflmp"] = {"wall_s": round(wall, 1), **report["timings_s"],
                       "float": m["float"]["accuracy"],
                       "ptq_int8_tflm": m["ptq_int8_tflm"]["accuracy"],
                       "qat_int8_tflm": m["qat_int8_tflm"]["accuracy"],
                       "selected": m["selected"], "batch_size": report["training"]["batch_size"],
                       "tflite_bytes": report["model"]["tflite_bytes"],
                       "arena_bytes": report["model"]["arena_bytes"]}
    if not args.skip_baseline:
        out = subprocess.run([sys.executable, str(HERE / "baseline_plain.py"), "--data-dir",
                              data_dir], check=True, capture_output=True, text=True).stdout
        result["plain"] = json.loads(out.strip().splitlines()[-1])
        result["ratio"] = round(result["tflmp"]["wall_s"] / result["plain"]["wall_s"], 2)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "e2e_mnist.json").write_text(json.dumps(result, indent=2) + "\n")
    t, p = result["tflmp"], result.get("plain")
    row = (f"| {result['date']} | {t['wall_s']:.0f} s | {t['qat_int8_tflm']:.4f} | "
           f"{t['ptq_int8_tflm']:.4f} |")
    if p:
        row += f" {p['wall_s']:.0f} s | {p['qat_int8_tflm']:.4f} | {result['ratio']:.2f} |"
    print(row)


if __name__ == "__main__":
    main()
