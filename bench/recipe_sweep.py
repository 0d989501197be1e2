"""Training recipes for LeNet/MNIST, one `tflmp train` each: wall time and int8 TFLM accuracy.

    python bench/recipe_sweep.py --data-dir ../shared/datasets/mnist \
        --recipe "--schedule onecycle --lr 4e-3 --batch-size 256 --epochs 3 --qat-epochs 1" \
        [--recipe "..."] [--seeds 0,1,2] [--out bench/results/recipe_sweep.jsonl]

Each recipe is the extra `tflmp train` flags; an empty string runs tflmp's defaults.
Appends one JSON line per run (flags, seed, wall and CPU time, stage timings, float / PTQ / QAT
accuracies, which model the run selected, the 1-min load average before and after) and
prints a Markdown row.  The table of recipes tried is in docs/BENCHMARKS.md.
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process: less sensitive than
    the wall time to other work on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(data_dir: str, flags: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        load_before = os.getloadavg()[0]
        cpu = _children_cpu()
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", "train", "--model", "lenet",
                        "--dataset", "mnist", "--data-dir", data_dir, "--seed", str(seed),
                        "--out", str(out), *shlex.split(flags)],
                       check=True, capture_output=True, text=True)
        wall = time.monotonic() - t
        cpu = _children_cpu() - cpu
        report = json.loads((out / "report.json").read_text())
        config = json.loads((out / "config.json").read_text())
    m = report["metrics"]
    acc = {k: m[k]["accuracy"] for k in ("float", "ptq_int8_tflm", "qat_int8_tflm") if k in m}
    return {"flags": flags, "seed": seed, "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "timings_s": report["timings_s"], **acc,
            "selected": m["selected"],
            "selected_int8_tflm": m[m["selected"]]["accuracy"],
            "epochs": config["epochs"], "qat_epochs": config["qat_epochs"],
            "batch_size": report["training"]["batch_size"],
            "schedule": report["training"].get("schedule"), "lr": report["training"]["lr"],
            "recipe": config.get("recipe"),
            "qat_decision": report["training"].get("qat_decision"),
            "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--recipe", action="append", required=True)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default=str(HERE / "results" / "recipe_sweep.jsonl"))
    args = ap.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for flags in args.recipe:
        for seed in (int(s) for s in args.seeds.split(",")):
            r = run(data_dir, flags, seed)
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"| `{flags or '(defaults)'}` | {seed} | {r['wall_s']:.0f} s | {r['cpu_s']:.0f} s | "
                  f"{r['float']:.4f} | {r.get('ptq_int8_tflm', float('nan')):.4f} | "
                  f"{r.get('qat_int8_tflm', float('nan')):.4f} | {r['selected']} | "
                  f"{r['load_1min'][0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
