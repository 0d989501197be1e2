"""Time to >= 99.0 % int8 accuracy in TFLM on MNIST LeNet: `tflmp train` with its defaults
(no --epochs: the fast recipe, config.FAST) against the plain flow (bench/baseline_plain.py),
in alternating rounds of one session.

    python bench/time_to_accuracy.py --data-dir ../shared/datasets/mnist --rounds 3

Every time is the wall time of the whole process (TensorFlow's import included); the CPU
time of the process and its children and the 1-minute load average before each run are
logged too, because a shared machine's wall times drift.  The order of the two flows
swaps every round.  A flow's time counts toward the goal only when its int8 model
reaches --goal (tflmp: the selected int8 model; plain: its QAT int8 model, both on the
whole test set in TFLM).  Writes bench/results/time_to_accuracy.json (no machine paths)
and prints the rows for docs/BENCHMARKS.md.
"""

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str]) -> tuple[dict, str]:
    load, cpu, t = os.getloadavg()[0], _children_cpu(), time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {"wall_s": round(time.monotonic() - t, 1), "cpu_s": round(_children_cpu() - cpu, 1),
            "load_1min": round(load, 2)}, out


def run_tflmp(data_dir: str, seed: int, flags: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        timing, _ = _timed([sys.executable, "-m", "tflm_pipeline.cli", "train", "--model",
                            "lenet", "--dataset", "mnist", "--data-dir", data_dir, "--seed",
                            str(seed), "--out", str(run), *shlex.split(flags)])
        report = json.loads((run / "report.json").read_text())
        config = json.loads((run / "config.json").read_text())
    m, t = report["metrics"], report["training"]
    return {**timing, "int8_tflm": m[m["selected"]]["accuracy"], "selected": m["selected"],
            "float": m["float"]["accuracy"], "stages_s": report["timings_s"],
            "recipe": {k: config.get(k) for k in ("recipe", "epochs", "qat_epochs",
                                                   "batch_size", "lr", "schedule",
                                                   "qat_if_needed")},
            "qat_decision": t.get("qat_decision")}


def run_plain(data_dir: str) -> dict:
    timing, out = _timed([sys.executable, str(HERE / "baseline_plain.py"), "--data-dir",
                          data_dir])
    inner = json.loads(out.strip().splitlines()[-1])
    return {**timing, "int8_tflm": inner["qat_int8_tflm"], "selected": "qat_int8_tflm",
            "ptq_int8_tflm": inner["ptq_int8_tflm"],
            "stages_s": {k: inner[k] for k in ("train_s", "qat_s", "convert_s", "evaluate_s")}}


def summary(runs: list[dict], goal: float) -> dict:
    return {"median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "min_int8_tflm": min(r["int8_tflm"] for r in runs),
            "all_reach_goal": all(r["int8_tflm"] >= goal for r in runs)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--goal", type=float, default=0.990)
    ap.add_argument("--flags", default="", help="extra `tflmp train` flags (default: none)")
    args = ap.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    runs = {"tflmp": [], "plain": []}
    for i in range(args.rounds):
        order = ("tflmp", "plain") if i % 2 == 0 else ("plain", "tflmp")
        for flow in order:
            runs[flow].append(run_tflmp(data_dir, args.seed, args.flags) if flow == "tflmp"
                              else run_plain(data_dir))
        t, p = runs["tflmp"][-1], runs["plain"][-1]
        print(f"round {i + 1} ({' then '.join(order)}): tflmp {t['wall_s']} s "
              f"(cpu {t['cpu_s']} s, load {t['load_1min']}) int8 {t['int8_tflm']:.4f}; "
              f"plain {p['wall_s']} s (cpu {p['cpu_s']} s, load {p['load_1min']}) "
              f"int8 {p['int8_tflm']:.4f}", flush=True)
    s = {k: summary(v, args.goal) for k, v in runs.items()}
    result = {"date": date.today().isoformat(), "cpus": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "seed": args.seed,
              "goal": args.goal, "flags": args.flags, "rounds": runs, "summary": s,
              "ratio_wall": round(s["tflmp"]["median_wall_s"] / s["plain"]["median_wall_s"], 2),
              "ratio_cpu": round(s["tflmp"]["median_cpu_s"] / s["plain"]["median_cpu_s"], 2)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "time_to_accuracy.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n| date | tflmp wall (cpu) | tflmp int8 TFLM | plain wall (cpu) | plain int8 TFLM "
          "| ratio wall (cpu) | load 1 min |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, (t, p) in enumerate(zip(runs["tflmp"], runs["plain"])):
        print(f"| {result['date']} round {i + 1} | {t['wall_s']:.0f} s ({t['cpu_s']:.0f} s) | "
              f"{t['int8_tflm']:.4f} | {p['wall_s']:.0f} s ({p['cpu_s']:.0f} s) | "
              f"{p['int8_tflm']:.4f} | {t['wall_s'] / p['wall_s']:.2f} "
              f"({t['cpu_s'] / p['cpu_s']:.2f}) | {t['load_1min']:.1f} / {p['load_1min']:.1f} |")
    st, sp = s["tflmp"], s["plain"]
    print(f"| {result['date']} median of {args.rounds} | {st['median_wall_s']:.0f} s "
          f"({st['median_cpu_s']:.0f} s) | min {st['min_int8_tflm']:.4f} | "
          f"{sp['median_wall_s']:.0f} s ({sp['median_cpu_s']:.0f} s) | "
          f"min {sp['min_int8_tflm']:.4f} | {result['ratio_wall']:.2f} "
          f"({result['ratio_cpu']:.2f}) | |")


if __name__ == "__main__":
    main()
