"""`tflmp tune` on a real 1-D signal task under a 16 KB flash budget.

    python bench/tune.py --shared ../shared [--trials 20] [--keep DIR]

BasicMotions (UEA archive: 6-axis smart-watch IMU, 100 steps, 4 activities; 40 train +
40 test cases) with the zoo's cnn1d.  First the zoo default (`tflmp train --model cnn1d`,
filters 16-32-64, kernel 5) is trained; then `tflmp tune --board arduino-nano33ble
--max-flash 16KB` searches depth/filters/kernel, lr, batch, optimizer, epochs and QAT
epochs.  Both are scored as the selected int8 model in the TFLM interpreter (validation
for the search, the 40-case test set for the comparison), with flash (flatbuffer), the
32-bit arena and the Nano 33 BLE latency band from the code `tflmp profile` uses.

Writes bench/results/tune.json and prints a Markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

BOARD = "arduino-nano33ble"
BUDGET = 16 * 1024


def _inside(path, work: Path) -> str:
    """A run folder as a path inside the bench's work folder (no machine paths in results)."""
    path = Path(path)
    return str(path.relative_to(work)) if path.is_relative_to(work) else path.name


def _trial(row, work: Path) -> dict:
    d = row.to_dict()
    if d.get("run_dir"):
        d["run_dir"] = _inside(d["run_dir"], work)
    return d


def basicmotions_recipe(shared: str, epochs: int):
    """The BasicMotions run this bench and bench/cv.py measure: the zoo's cnn1d, ``epochs``
    + 3 QAT epochs, a quarter of the training cases for validation, seed 0."""
    from tflm_pipeline import RunConfig

    data = Path(shared) / "datasets" / "timeseries" / "basicmotions"
    return RunConfig(model="cnn1d", dataset=str(data), epochs=epochs, qat_epochs=3,
                     val_split=0.25, seed=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--keep", help="keep the run and tune folders here")
    args = ap.parse_args()

    from tflm_pipeline import Limits, train, tune
    from tflm_pipeline.console import install_logging
    from tflm_pipeline.runs import RunFolder
    from tflm_pipeline.tflite.model_info import read_model, read_model_bytes
    from tflm_pipeline.tuning.feasibility import footprint

    install_logging()
    base = basicmotions_recipe(args.shared, args.epochs)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tflmp-bench-tune-"))
    work.mkdir(parents=True, exist_ok=True)

    def facts(run_dir: Path, seconds: float) -> dict:
        rec = RunFolder(run_dir).record()
        row = rec.scores[rec.selected]
        fp = footprint(read_model(read_model_bytes(RunFolder(run_dir).selected_model)), BOARD)
        return {"run_dir": _inside(run_dir, work), "selected": rec.selected,
                "val_accuracy": row["val_accuracy"], "test_accuracy": row["accuracy"],
                "flash_bytes": fp.flash_bytes, "arena_bytes": fp.ram_bytes,
                "latency_ms_high": fp.latency_ms, "fits_board": fp.board_fits,
                "within_budget": fp.flash_bytes <= BUDGET, "seconds": round(seconds, 1),
                "model_options": RunFolder(run_dir).config.model_options}

    t = time.monotonic()
    default_dir = work / "default"
    if not (default_dir / "report.json").exists():
        train(base, default_dir, command=["bench/tune.py", "default"])
    default = facts(default_dir, time.monotonic() - t)

    t = time.monotonic()
    result = tune(base, work / "tune", trials=args.trials,
                  limits=Limits(board=BOARD, max_flash=BUDGET))
    seconds = time.monotonic() - t
    best = facts(result.best_dir, result.best.seconds or 0) if result.best_dir else None
    states = {}
    for r in result.trials:
        key = ("pruned (infeasible)" if r.reason.startswith("infeasible") else r.state)
        states[key] = states.get(key, 0) + 1
    out = {"date": time.strftime("%Y-%m-%d"), "dataset": "BasicMotions", "board": BOARD,
           "max_flash": BUDGET, "trials": len(result.trials), "states": states,
           "trials_run": result.trials_run, "tune_seconds": round(seconds, 1),
           "trials_per_hour": round(result.trials_per_hour or 0, 1),
           "load_average": os.getloadavg(), "cpus": os.cpu_count(),
           "default": default, "best": best,
           "best_trial": _trial(result.best, work) if result.best else None,
           "pareto": [_trial(r, work) for r in result.front]}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "tune.json").write_text(json.dumps(out, indent=2, default=str) + "\n")

    print("| model | int8 TFLM val acc | int8 TFLM test acc | flash (model) | arena | "
          f"latency {BOARD} (upper) | within 16 KB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, f in (("zoo default cnn1d", default), ("best tuned", best)):
        if f is None:
            print(f"| {name} | — | — | — | — | — | — |")
            continue
        print(f"| {name} {f['model_options'] or ''} | {f['val_accuracy']:.3f} | "
              f"{f['test_accuracy']:.3f} | {f['flash_bytes']:,} B | {f['arena_bytes']:,} B | "
              f"{f['latency_ms_high']:.3g} ms | {'yes' if f['within_budget'] else 'no'} |")
    print(f"\n{len(result.trials)} trials ({states}) in {seconds / 60:.1f} min = "
          f"{out['trials_per_hour']} trials/hour; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
