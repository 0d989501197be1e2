"""`tflmp train --cv 5` on BasicMotions against the same run without --cv.

    python bench/cv.py --shared ../shared [--jobs 1 2] [--keep DIR]

BasicMotions (UEA archive: 6-axis smart-watch IMU, 100 steps, 4 activities; 40 train +
40 test cases) with the zoo's cnn1d, the recipe bench/tune.py uses for its default (30
epochs, 3 QAT epochs, --val-split 0.25, seed 0).  First one run without --cv, then the
same run with --cv 5 for each --jobs value (folds at once): per-fold float / PTQ int8 /
QAT int8 accuracy on the held-out fifth of the 40 training cases (int8 in TFLM), mean
+- std, and the wall time of each run.

Writes bench/results/cv.json and prints Markdown for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

KEYS = ("float", "ptq_int8_tflm", "qat_int8_tflm", "selected_int8")
NAMES = {"float": "float (Keras)", "ptq_int8_tflm": "PTQ int8 (TFLM)",
         "qat_int8_tflm": "QAT int8 (TFLM)", "selected_int8": "selected int8 (TFLM)"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--keep", help="keep the run folders here")
    args = ap.parse_args()

    from tflm_pipeline import train
    from tflm_pipeline.console import install_logging

    install_logging()
    from tune import basicmotions_recipe  # bench/tune.py: the same run, one definition

    base = basicmotions_recipe(args.shared, args.epochs)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tflmp-bench-cv-"))
    work.mkdir(parents=True, exist_ok=True)

    def timed(name, config):
        load = os.getloadavg()[0]
        t = time.monotonic()
        rec = train(config, work / name, command=["bench/cv.py", name]).record
        return rec, round(time.monotonic() - t, 1), round(load, 1)

    single, single_s, single_load = timed("single", base)
    out = {"date": time.strftime("%Y-%m-%d"), "dataset": "BasicMotions", "model": "cnn1d",
           "recipe": {"epochs": base.epochs, "qat_epochs": base.qat_epochs,
                      "val_split": base.val_split, "seed": base.seed},
           "cpus": os.cpu_count(),
           "single": {"seconds": single_s, "load_average_at_start": single_load,
                      "selected": single.selected,
                      "test_accuracy": {k: single.scores[k]["accuracy"]
                                        for k in ("float", "ptq_int8_tflm", "qat_int8_tflm")},
                      "val_accuracy": single.scores[single.selected]["val_accuracy"]},
           "cv": []}
    for jobs in args.jobs:
        config = dataclasses.replace(base, cv=args.k, cv_jobs=jobs)
        rec, seconds, load = timed(f"cv{args.k}-jobs{jobs}", config)
        cv = rec.cross_validation
        out["cv"].append({
            "jobs": jobs, "seconds": seconds, "cv_stage_seconds": cv["seconds"],
            "load_average_at_start": load, "k": cv["k"], "method": cv["method"],
            "folds": [{"fold": f["fold"], "samples": f["samples"], "selected": f["selected"],
                       "seconds": f["seconds"],
                       "accuracy": {k: f["scores"][k]["accuracy"] for k in KEYS}}
                      for f in cv["folds"]],
            "mean": {k: cv["mean"][k]["accuracy"] for k in KEYS},
            "std": {k: cv["std"][k]["accuracy"] for k in KEYS},
            "final_test_accuracy": {k: rec.scores[k]["accuracy"]
                                    for k in ("float", "ptq_int8_tflm", "qat_int8_tflm")}})
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "cv.json").write_text(json.dumps(out, indent=2) + "\n")

    first = out["cv"][0]
    print("| fold | held out | " + " | ".join(NAMES[k] for k in KEYS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in KEYS) + " |")
    for f in first["folds"]:
        print(f"| {f['fold']} | {f['samples']['held_out']} | "
              + " | ".join(f"{f['accuracy'][k]:.3f}" for k in KEYS) + " |")
    print("| **mean ± std** | | " + " | ".join(
        f"**{first['mean'][k]:.3f} ± {first['std'][k]:.3f}**" for k in KEYS) + " |")
    print(f"\none run without --cv: {single_s:.0f} s (test accuracy "
          + ", ".join(f"{NAMES[k]} {v:.3f}" for k, v in out["single"]["test_accuracy"].items())
          + ")")
    for r in out["cv"]:
        print(f"--cv {args.k} --cv-jobs {r['jobs']}: {r['seconds']:.0f} s "
              f"(cv stage {r['cv_stage_seconds']:.0f} s; load average "
              f"{r['load_average_at_start']})")


if __name__ == "__main__":
    main()
