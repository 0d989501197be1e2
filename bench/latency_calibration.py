"""Cortex-M4 instructions per inference of the MLPerf Tiny reference models, counted by
QEMU -icount, against their published latencies: cycles per instruction calibrated on
some models and checked on the others.

    python bench/latency_calibration.py --models DIR --tree PATH --label NAME [--flags F]

DIR holds the four int8 reference models of mlcommons/tiny
(benchmark/training/*/trained_models/: kws_ref_model.tflite, vww_96_int8.tflite,
pretrainedResnet_quant.tflite, ad01_int8.tflite; the same bytes as the C arrays of the
v0.5 reference submission); fetch them, they are not part of tflmp.  PATH is a TFLM tree
with CMSIS-NN (an Arduino library's src/); ``--flags`` replace the tree's defines, to
count the build the published run used; the build compiles at the Arduino target's
optimisation level (targets.yaml, -Os) unless ``--optimize`` says otherwise.  Each run
adds the rows of one build (``--label``), with the band ``profile`` gives from its counts
(firmware/boards.yaml's per-family cycles per instruction),
to bench/results/latency_calibration.json and prints every build's table.

The published build's software, TFLM of late 2020 with its CMSIS-NN, as an Arduino
library (tinyMLx/arduino-library: Harvard_TinyMLx 1.2.4-Alpha, a fork of
Arduino_TensorFlowLite 2.4.0-ALPHA), made a tree like this (its prebuilt
src/cortex-m4/*.a is not needed; the Arduino core supplies CMSIS 5's cmsis_gcc.h):

    git -C arduino-library archive HEAD -- src library.properties ':!src/cortex-m4' \
        | tar -x -C tinymlx
    cp Chirale_TensorFlowLite/src/third_party/cmsis/CMSIS/Core/Include/cmsis_gcc.h \
        tinymlx/src/tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/Core/Include/
    python bench/latency_calibration.py --models DIR --tree tinymlx \
        --label tflm-2.4-cmsis-nn-2020-Os --software "..." \
        --flags "-DCMSIS_NN -DTF_LITE_STATIC_MEMORY -Os"

Published latencies: the MLPerf Tiny v0.5 closed-division reference submission
(mlcommons/tiny_results_v0.5, closed/reference/results/Nucleo-L4R5ZI/<task>/performance/
results.txt, median throughput): NUCLEO-L4R5ZI, Cortex-M4F at 120 MHz, TFLM v2.3.1 made
with TAGS=cmsis-nn into an Mbed project, built by ``mbed compile -t GCC_ARM`` (develop
profile: -Os), macros TF_LITE_STATIC_MEMORY (reference_submissions/*/setup_example.sh,
mbed_app.json).
"""

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latency_calibration.json"
CLOCK_MHZ = 120
SOURCE = "mlcommons/tiny_results_v0.5: closed/reference/results/Nucleo-L4R5ZI/{}/performance/results.txt"
# task folder and median inferences per second of the v0.5 reference submission
PUBLISHED = {"kws_ref_model": ("kws", 5.497), "vww_96_int8": ("vww", 1.665),
             "pretrainedResnet_quant": ("ic", 1.420), "ad01_int8": ("ad", 99.487)}
# One model of each kernel family calibrates it; the other checks it.  Both ways round
# are reported (SWAPPED), so the verdict does not rest on one choice.
CALIBRATE = ("kws_ref_model", "pretrainedResnet_quant")
SWAPPED = ("vww_96_int8", "ad01_int8")


def count(models: Path, tree_path: Path, flags: list[str] | None,
          optimize: str | None = None) -> list[dict]:
    """Instructions per inference of each model on the tree's Cortex-M4 build, compiled
    at ``optimize`` (default: the Arduino target's level, targets.yaml)."""
    from tflm_pipeline.codegen.op_resolver import write_op_resolver
    from tflm_pipeline.mcu.build_check import find_tree
    from tflm_pipeline.mcu.targets import get_target
    from tflm_pipeline.mcu.cpi import kernel_family
    from tflm_pipeline.mcu.qemu_harness import build_qemu_harness, run_qemu
    from tflm_pipeline.tflite.layers import layers
    from tflm_pipeline.tflite.model_info import read_model
    from tflm_pipeline.tflm import interpreter

    arduino = get_target("arduino-nano33ble")
    tree = find_tree(tree_path).for_target(arduino)  # as firmware --check builds it
    if optimize is not None:
        tree = dataclasses.replace(tree, optimize=optimize)
    if flags is not None:
        tree = dataclasses.replace(tree, defines=flags)
    rows = []
    for name, (task, per_s) in PUBLISHED.items():
        path = models / f"{name}.tflite"
        data = path.read_bytes()
        info = read_model(data)
        x = np.random.default_rng(0).integers(-128, 128, (4, *info.inputs[0].shape[1:]))
        x = x.astype(info.inputs[0].dtype)
        arena = 2 * interpreter.find_arena_size(data, info=info).bytes + 65536
        target = get_target("arduino-nano33ble")  # the resolver of today's API
        with tempfile.TemporaryDirectory() as tmp:
            write_op_resolver(info, "model", tmp, ops=target.registrations(info),
                              op_sources=target.op_sources)
            elf = build_qemu_harness(tree, Path(tmp), "model", "Model", Path(tmp), arena)
            run = run_qemu(elf, path, info, x)
        pip = interpreter.run(data, x, info=info)[0]
        ms = 1000 / per_s
        rows.append({"model": name, "family": kernel_family(info.op_names),
                     "macs": sum(r.macs for r in layers(info)),
                     "instructions": run.median_instructions,
                     "outputs_equal_pip": bool(np.array_equal(run.outputs, pip)),
                     "published_ms": ms, "published_cycles": ms * CLOCK_MHZ * 1e3,
                     "published_source": SOURCE.format(task)})
    return rows


def evaluate(rows: list[dict], calibrate: tuple[str, ...]) -> dict:
    """Factors fitted on ``calibrate``, and every row's prediction and error."""
    from tflm_pipeline.mcu.cpi import fit_cycles_per_instruction, predict_ms

    factors = fit_cycles_per_instruction([r for r in rows if r["model"] in calibrate])
    single = fit_cycles_per_instruction([{**r, "family": "all"} for r in rows
                                         if r["model"] in calibrate])["all"]
    out = []
    for r in rows:
        predicted = predict_ms(r["instructions"], r["family"], factors, CLOCK_MHZ)
        one_factor = predict_ms(r["instructions"], "all", {"all": single}, CLOCK_MHZ)
        out.append({"model": r["model"], "predicted_ms": predicted,
                    "error": predicted / r["published_ms"] - 1,
                    "error_one_factor": one_factor / r["published_ms"] - 1,
                    "role": "calibration" if r["model"] in calibrate else "validation"})
    return {"calibrated_on": list(calibrate), "cycles_per_instruction": factors,
            "one_factor": single, "rows": out}


def transfer(rows: list[dict], source: str, build: dict) -> dict:
    """Every row predicted with the factors ``build`` fitted on its own calibration models
    (all four are validation here)."""
    from tflm_pipeline.mcu.cpi import predict_ms

    factors = build["fits"][0]["cycles_per_instruction"]
    return {"factors_from": source, "cycles_per_instruction": factors,
            "rows": [{"model": r["model"],
                      "predicted_ms": (p := predict_ms(r["instructions"], r["family"],
                                                       factors, CLOCK_MHZ)),
                      "error": p / r["published_ms"] - 1} for r in rows]}


def boards_yaml(rows: list[dict]) -> dict:
    """Every row's estimate as ``profile --measured-instructions`` gives it: the counted
    instructions x the Nano 33 BLE kernels' cycles per instruction of the row's family
    (firmware/boards.yaml), at the published board's clock."""
    from tflm_pipeline.mcu.boards import get_board

    kernels = get_board("arduino-nano33ble").kernels
    out = []
    for r in rows:
        factor = kernels.instruction_factor(r["family"])
        lo, hi = (r["instructions"] * f / (CLOCK_MHZ * 1e3) for f in factor.band)
        mid = r["instructions"] * sum(factor.factors) / 2 / (CLOCK_MHZ * 1e3)
        out.append({"model": r["model"], "low_ms": lo, "high_ms": hi, "mid_ms": mid,
                    "error_mid": mid / r["published_ms"] - 1,
                    "published_inside": lo <= r["published_ms"] <= hi})
    return {"kernels": kernels.name, "rows": out}


def table(label: str, build: dict) -> str:
    lines = [f"### {label}: {build['software']}", "",
             "| model | family | instructions | published ms | cycles/instruction | "
             "predicted ms | error | role | error, swapped | error, one factor |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    main, swapped = build["fits"]
    for r, p, q in zip(build["rows"], main["rows"], swapped["rows"]):
        lines.append(
            f"| {r['model']} | {r['family']} | {r['instructions']:,} | "
            f"{r['published_ms']:.1f} | {r['published_cycles'] / r['instructions']:.3f} | "
            f"{p['predicted_ms']:.1f} | {p['error']:+.1%} | {p['role']} | "
            f"{q['error']:+.1%} ({q['role'][:3]}.) | {p['error_one_factor']:+.1%} |")
    factors = ", ".join(f"{k} {v:.3f}" for k, v in sorted(main["cycles_per_instruction"].items()))
    lines.append(f"\nFactors (calibrated on {', '.join(main['calibrated_on'])}): {factors}; "
                 f"one factor over both: {main['one_factor']:.3f}.")
    if "boards_yaml" in build:
        lines.append(f"boards.yaml ({build['boards_yaml']['kernels']}) band at {CLOCK_MHZ} MHz: "
                     + ", ".join(f"{r['model']} {r['low_ms']:.1f}-{r['high_ms']:.1f} ms "
                                 f"(mid {r['error_mid']:+.1%}"
                                 f"{', published inside' if r['published_inside'] else ''})"
                                 for r in build["boards_yaml"]["rows"]) + ".")
    if "transfer" in build:
        t = build["transfer"]
        lines.append(f"With {t['factors_from']}'s factors: " + ", ".join(
            f"{r['model']} {r['error']:+.1%}" for r in t["rows"]) + ".")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--tree", required=True, type=Path)
    ap.add_argument("--label", required=True, help="name of this build in the results")
    ap.add_argument("--software", required=True, help="what the tree and flags are, in words")
    ap.add_argument("--flags", help="defines and flags replacing the tree's, e.g. "
                    "'-DCMSIS_NN -DTF_LITE_STATIC_MEMORY -Os'")
    ap.add_argument("--optimize", help="optimisation level of the Cortex-M4 build "
                    "(default: the Arduino target's, targets.yaml; --flags may override it)")
    ap.add_argument("--factors-from", metavar="LABEL",
                    help="also predict these counts with the factors another build's "
                    "calibration fitted (does a factor carry over to other software?)")
    args = ap.parse_args()
    rows = count(args.models, args.tree, args.flags.split() if args.flags else None,
                 args.optimize)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    builds = results.get("builds", {})
    builds[args.label] = {"software": args.software, "flags": args.flags,
                          "optimize": args.optimize, "rows": rows,
                          "fits": [evaluate(rows, CALIBRATE), evaluate(rows, SWAPPED)],
                          "boards_yaml": boards_yaml(rows)}
    if args.factors_from:
        builds[args.label]["transfer"] = transfer(rows, args.factors_from,
                                                  builds[args.factors_from])
    RESULTS.write_text(json.dumps({"clock_mhz": CLOCK_MHZ, "builds": builds}, indent=2) + "\n")
    for label, build in builds.items():
        print(table(label, build) + "\n")


if __name__ == "__main__":
    main()
