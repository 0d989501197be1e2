"""End-to-end LeNet/MNIST: `tflmp train` (6 float + 2 QAT epochs) against the plain script
(bench/baseline_plain.py) and against the training-only floor (bench/train_floor.py),
alternating in the same session on the same machine.

    python bench/e2e_mnist.py --data-dir ../shared/datasets/mnist [--repeat 3]

Every figure is the wall time of the whole process, from start to exit; with --repeat
the three commands take turns and the medians are reported (this machine's speed
drifts by up to a third within minutes).  Writes bench/results/e2e_mnist.json and
prints a Markdown row for docs/BENCHMARKS.md.  Run it on an otherwise idle machine.
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


def timed(cmd) -> tuple[float, str]:
    t = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.monotonic() - t, out


def run_tflmp(data_dir: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        wall, _ = timed([sys.executable, "-m", "tflm_pipeline.cli", "train", "--model", "lenet",
                         "--dataset", "mnist", "--data-dir", data_dir, "--epochs", "6",
                         "--qat-epochs", "2", "--seed", str(seed), "--out", str(run)])
        report = json.loads((run / "report.json").read_text())
    m = report["metrics"]
    return {"wall_s": round(wall, 1), **report["timings_s"],
            "float": m["float"]["accuracy"], "ptq_int8_tflm": m["ptq_int8_tflm"]["accuracy"],
            "qat_int8_tflm": m["qat_int8_tflm"]["accuracy"], "selected": m["selected"],
            "batch_size": report["training"]["batch_size"],
            "tflite_bytes": report["model"]["tflite_bytes"],
            "arena_bytes": report["model"]["arena_bytes"]}


def run_script(script: str, *args: str) -> dict:
    wall, out = timed([sys.executable, str(HERE / script), *args])
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": round(wall, 1)}


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (its own breakdown kept)."""
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    runs = {"tflmp": [], "plain": [], "floor": []}
    for i in range(args.repeat):
        runs["tflmp"].append(run_tflmp(data_dir, args.seed))
        batch = str(runs["tflmp"][-1]["batch_size"])
        runs["plain"].append(run_script("baseline_plain.py", "--data-dir", data_dir))
        runs["floor"].append(run_script("train_floor.py", "--data-dir", data_dir,
                                        "--batch", batch))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]['wall_s']} s"
                                             for k, v in runs.items()), flush=True)
    t, p, f = (median_run(runs[k]) for k in ("tflmp", "plain", "floor"))
    result = {"date": date.today().isoformat(), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "seed": args.seed,
              "repeat": args.repeat, "tflmp": t, "plain": p, "floor": f,
              "walls_s": {k: [r["wall_s"] for r in v] for k, v in runs.items()},
              "ratio": round(t["wall_s"] / p["wall_s"], 2),
              "floor_ratio": round(f["wall_s"] / p["wall_s"], 2)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "e2e_mnist.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"| {result['date']} | {t['wall_s']:.0f} s | {t['qat_int8_tflm']:.4f} | "
          f"{t['ptq_int8_tflm']:.4f} | {p['wall_s']:.0f} s | {p['qat_int8_tflm']:.4f} | "
          f"{result['ratio']:.2f} | {f['wall_s']:.0f} s | {result['floor_ratio']:.2f} |")


if __name__ == "__main__":
    main()
