"""The model zoo on real data and at the MLPerf Tiny reference shapes.

    python bench/zoo.py --shared ../shared [--quick]

Real data (trained with `tflmp train`, accuracy in TFLM on the whole test set):
  lenet on MNIST and on Fashion-MNIST; cnn1d on sequential MNIST (each image read row by
  row as a 28-step, 28-channel sequence: the only real time series available offline).
Reference shapes (untrained weights: size and memory do not depend on training):
  dscnn 49x10x1, mobilenet_v1 96x96x3 (alpha 0.25), resnet8 32x32x3, autoencoder 640,
  mlp 64: full-int8 size, MACs, the arena measured in the TFLM Python interpreter
  (64-bit host) and derived for a Cortex-M (TFLM 2026 reference kernels; Chirale's
  CMSIS-NN as the Arduino IDE builds it).

Harness on every zoo model: each of the seven trains on scikit-learn's digits (8x8x1
images; 8 steps x 8 channels for cnn1d, 64 features for mlp) with `tflmp train --ladder`, which produces the parity
ladder, the per-layer error, the profile and board fit, and report.md / report.html.
The real-data runs use --ladder too.  --keep DIR keeps all run folders (reports).

Writes bench/results/zoo.json and prints Markdown tables for docs/BENCHMARKS.md.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = {"dscnn": ((49, 10, 1), 12), "mobilenet_v1": ((96, 96, 3), 2),
             "resnet8": ((32, 32, 3), 10), "autoencoder": ((640,), 0), "mlp": ((64,), 10)}


def train(args, tmp, name, extra):
    run = tmp / name
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", "train", "--out", str(run),
                    "--max-drop", "100", "--ladder", *extra], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.monotonic() - t
    r = json.loads((run / "report.json").read_text())
    led = r["ledger"]
    metric = led["metric"]
    parity, memory = r["parity"], r["profile"]["memory"]
    worst = max(r["per_layer_error"], key=lambda e: e["rmse_over_scale"])
    divergence = parity["first_divergence"]
    return {"name": name, "wall_s": round(wall, 1), "metric": metric,
            "float": led["float"][metric],
            "ptq_int8_tflm": led["ptq_int8_tflm"][metric],
            "qat_int8_tflm": led.get("qat_int8_tflm", {}).get(metric),
            "selected": r["metrics"]["selected"],
            "drop_pp": led[r["metrics"]["selected"]]["drop_pp"],
            "tflite_bytes": r["model"]["tflite_bytes"],
            "arena_host": r["model"]["arena_bytes"],
            "arena_32bit": r["model"]["arena_32bit"]["arena_bytes"],
            "lower_bound": memory["lower_bound_bytes"], "gap": memory["gap_bytes"],
            "bit_exact_tflm_vs_tflite": parity["tflm_vs_tflite"]["bit_exact_share"],
            "first_divergence": (f"#{divergence['op_index']} {divergence['op']} "
                                 f"({divergence['layer']})" if divergence else "none"),
            "worst_layer": f"{worst['layer']} {worst['rmse_over_scale']:.2f}",
            "report": f"{name}/report.html"}  # under --keep


def reference_int8(name: str, shape, classes: int):
    """The zoo model ``name`` built at ``shape`` and its full-int8 flatbuffer, after one
    epoch on seeded random data: freshly initialized deep models output ~constant logits,
    whose degenerate quantization scale makes TFLM's softmax abort."""
    from tflm_pipeline.models import build_model
    from tflm_pipeline.quantize.int8 import to_int8_tflite

    model = build_model(name, shape, classes)
    rng = np.random.default_rng(0)
    x = rng.random((256, *shape), dtype=np.float32)
    y = x.reshape(len(x), -1) if classes == 0 else rng.integers(0, classes, len(x))
    model.compile("adam", "mse" if classes == 0 else "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return model, to_int8_tflite(model, x[:50])


def reference_rows():
    from tflm_pipeline.mcu import arena
    from tflm_pipeline.tflite import memory_plan
    from tflm_pipeline.tflite.layers import totals
    from tflm_pipeline.tflite.model_info import read_model
    from tflm_pipeline.tflm.interpreter import find_arena_size

    rows = []
    for name, (shape, classes) in REFERENCE.items():
        model, flatbuffer = reference_int8(name, shape, classes)
        info = read_model(flatbuffer)
        rows.append({"name": name, "shape": "x".join(map(str, shape)),
                     "params": model.count_params(), "macs": totals(info)["macs"],
                     "tflite_bytes": len(flatbuffer),
                     "lower_bound": memory_plan.plan(info).lower_bound,
                     "arena_host": find_arena_size(flatbuffer, info=info).bytes,
                     "arena_tflm_2026": arena.estimate(info, "tflm-2026").bytes,
                     "arena_chirale_cmsis": arena.estimate(info, "chirale-2.0.0-cmsis-nn").bytes})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True, help="the ../shared folder")
    ap.add_argument("--quick", action="store_true", help="fewer epochs (smoke test)")
    ap.add_argument("--keep", type=Path, help="keep the run folders here")
    args = ap.parse_args()
    shared = Path(args.shared).resolve()
    epochs = ["--epochs", "2", "--qat-epochs", "1"] if args.quick else \
        ["--epochs", "6", "--qat-epochs", "2"]
    result = {"real_data": [], "zoo_digits": [], "reference_shapes": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep.resolve() if args.keep else Path(tmp)
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images / 16).astype(np.float32)
        shapes = {"cnn1d": x, "mlp": x.reshape(len(x), -1)}  # 8 steps x 8; 64 features
        for name in ("lenet", "dscnn", "mobilenet_v1", "resnet8", "autoencoder", "cnn1d", "mlp"):
            data = ["--dataset", "digits"]
            if name in shapes:
                np.savez(tmp / f"digits-{name}.npz", x=shapes[name], y=digits.target)
                data = ["--dataset", str(tmp / f"digits-{name}.npz")]
            result["zoo_digits"].append(train(args, tmp, f"{name}-digits", [
                "--model", name, *data, "--epochs", "4" if args.quick else "15",
                "--qat-epochs", "1" if args.quick else "2"]))
        for name, data in (("lenet-mnist", "mnist"), ("lenet-fashion-mnist", "fashion-mnist")):
            result["real_data"].append(train(args, tmp, name, [
                "--model", "lenet", "--dataset", data, "--data-dir",
                str(shared / "datasets" / data), *epochs]))
        from tflm_pipeline.data.builtin import read_idx

        mnist = shared / "datasets" / "mnist"
        seq = tmp / "sequential-mnist.npz"
        np.savez(seq,
                 x_train=read_idx(mnist / "train-images-idx3-ubyte.gz").astype(np.float32) / 255,
                 y_train=read_idx(mnist / "train-labels-idx1-ubyte.gz"),
                 x_test=read_idx(mnist / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255,
                 y_test=read_idx(mnist / "t10k-labels-idx1-ubyte.gz"))
        result["real_data"].append(train(args, tmp, "cnn1d-sequential-mnist", [
            "--model", "cnn1d", "--dataset", str(seq), *epochs]))
    (HERE / "results").mkdir(exist_ok=True)
    out = HERE / "results" / "zoo.json"
    out.write_text(json.dumps(result, indent=2) + "\n")  # kept if the next part fails
    result["reference_shapes"] = reference_rows()
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| model / data | float | PTQ int8 TFLM | QAT int8 TFLM | selected drop | int8 bytes "
          "| arena host | arena 32-bit | wall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["real_data"]:
        print(f"| {r['name']} | {r['float']:.4f} | {r['ptq_int8_tflm']:.4f} | "
              f"{r['qat_int8_tflm']:.4f} | {r['drop_pp']:+.2f} pp | {r['tflite_bytes']:,} | "
              f"{r['arena_host']:,} | {r['arena_32bit']:,} | {r['wall_s']:.0f} s |")
    print()
    print("| model (digits) | metric | float | selected int8 TFLM | TFLM = TFLite-ref bit-exact "
          "| first diverging op | worst layer (RMSE/scale) | lower bound | arena 32-bit | gap |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["real_data"] + result["zoo_digits"]:
        print(f"| {r['name']} | {r['metric']} | {r['float']:.4f} | "
              f"{r[r['selected']]:.4f} | {r['bit_exact_tflm_vs_tflite']:.2%} | "
              f"{r['first_divergence']} | {r['worst_layer']} | {r['lower_bound']:,} | "
              f"{r['arena_32bit']:,} | {r['gap']:,} |")
    print()
    print("| model | input | params | MACs | int8 bytes | activation lower bound | arena host "
          "(64-bit) | arena TFLM 2026 (M4) | arena Chirale CMSIS-NN (M4) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["reference_shapes"]:
        print(f"| {r['name']} | {r['shape']} | {r['params']:,} | {r['macs']:,} | "
              f"{r['tflite_bytes']:,} | {r['lower_bound']:,} | {r['arena_host']:,} | "
              f"{r['arena_tflm_2026']:,} | {r['arena_chirale_cmsis']:,} |")


if __name__ == "__main__":
    main()
