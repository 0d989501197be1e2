"""Cortex-M4 instructions per inference of the MLPerf Tiny reference models, counted by
QEMU -icount on the Arduino target's own TFLM build (Chirale_TensorFlowLite: TFLM with
CMSIS-NN), against published latencies: a cycles-per-instruction factor calibrated on
two models and checked on the two others.

    python bench/latency_calibration.py --models DIR --tree PATH/Chirale_TensorFlowLite

DIR holds the four int8 reference models of mlcommons/tiny
(benchmark/training/*/trained_models/: kws_ref_model.tflite, vww_96_int8.tflite,
pretrainedResnet_quant.tflite, ad01_int8.tflite); fetch them, they are not part of tflmp.
The published latencies are the MLPerf Tiny v0.5 closed-division reference submission
(mlcommons/tiny_results_v0.5 closed/reference: NUCLEO-L4R5ZI, Cortex-M4F at 120 MHz,
TFLM 2.3.1 built with TAGS=cmsis-nn, median throughput).  Results go to
bench/results/latency_calibration.json and a Markdown table on stdout.
"""

import argparse
import json
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLOCK_MHZ = 120
# median inferences per second of the v0.5 reference submission -> ms per inference
PUBLISHED_MS = {"kws_ref_model": 1000 / 5.497, "vww_96_int8": 1000 / 1.665,
                "pretrainedResnet_quant": 1000 / 1.420, "ad01_int8": 1000 / 99.487}
CALIBRATE = ("kws_ref_model", "vww_96_int8")  # the other two check the factor


def main():
    from tflm_pipeline import firmware
    from tflm_pipeline.mcu.build_check import check_project
    from tflm_pipeline.tflite.layers import layers
    from tflm_pipeline.tflite.model_info import read_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--tree", required=True, type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in PUBLISHED_MS:
            path = args.models / f"{name}.tflite"
            info = read_model(path.read_bytes())
            macs = sum(r.macs for r in layers(info))
            project = firmware(path, "arduino-nano33ble", Path(tmp) / name).project
            (m4,) = check_project(project.out_dir, args.tree, qemu=True, host=False)
            rows.append({"model": name, "macs": macs, "passed": m4.passed,
                         "instructions": m4.instructions_per_inference,
                         "ops": m4.op_instructions, "published_ms": PUBLISHED_MS[name],
                         "published_cycles": PUBLISHED_MS[name] * CLOCK_MHZ * 1e3})
    known = [r for r in rows if r["model"] in CALIBRATE]
    cpi = (sum(r["published_cycles"] for r in known)
           / sum(r["instructions"] for r in known))
    for r in rows:
        r["cycles_per_instruction"] = r["published_cycles"] / r["instructions"]
        r["predicted_ms"] = r["instructions"] * cpi / (CLOCK_MHZ * 1e3)
        r["error"] = r["predicted_ms"] / r["published_ms"] - 1
        r["role"] = "calibration" if r["model"] in CALIBRATE else "validation"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latency_calibration.json").write_text(
        json.dumps({"cycles_per_instruction": cpi, "clock_mhz": CLOCK_MHZ, "rows": rows},
                   indent=2) + "\n")
    print(f"cycles per instruction, calibrated on {', '.join(CALIBRATE)}: {cpi:.3f}")
    print("| model | MACs | M4 instructions (QEMU) | instructions/MAC | published ms | "
          "cycles/instruction | predicted ms | error | role |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['macs']:,} | {r['instructions']:,} | "
              f"{r['instructions'] / r['macs']:.2f} | {r['published_ms']:.1f} | "
              f"{r['cycles_per_instruction']:.3f} | {r['predicted_ms']:.1f} | "
              f"{r['error']:+.1%} | {r['role']} |")


if __name__ == "__main__":
    main()
