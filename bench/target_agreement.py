"""Full-test-set agreement between the pip TFLM interpreter and each target's own TFLM
build for this host (`tflmp verify --target T --tflm-dir TREE --kernels K`): accuracy per
build where the inputs have labels, the share of samples whose outputs are bit-exact with
the pip interpreter, and, where a build differs, the largest difference and the first op
that differs.

    python bench/target_agreement.py --run RUN_DIR --chirale PATH/Chirale_TensorFlowLite \\
        --esp PATH/esp-tflite-micro [--mnist-dir PATH/mnist] [--kws PATH/kws_ref_model.tflite]

Builds: the upstream reference kernels (the TFLM sources esp-tflite-micro 1.4 ships,
``--kernels reference``), Chirale's CMSIS-NN kernels (portable C paths), esp-tflite-micro's
ESP-NN wrappers with ESP-NN's ANSI C (an ``esp-nn`` checkout beside the tree) and with
its generic optimized C (``--kernels optimized``, ESP-NN's default on ESP32/ESP32-C3).  Models: the
run (LeNet/MNIST, its test split), the TFLM example models in ../shared/models with their
test data (mnist_lstm on the MNIST test set, person_detect on its two test images) and,
where a model has no test data (micro_speech, the MLPerf Tiny KWS DS-CNN), int8 inputs
drawn uniformly with a fixed seed.  Results (no machine paths) go to
bench/results/target_agreement.json and a Markdown table to stdout.  TFLM trees are not
part of tflmp; each build is compiled once and cached (~/.cache/tflmp/tflm).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
SEED = 20261202

# (name, target, tree option, kernels, what it is)
BUILDS = [
    ("upstream reference", "esp-idf", "esp", "reference",
     "TFLM reference kernels (the TFLM sources of esp-tflite-micro 1.4.0)"),
    ("Chirale CMSIS-NN C", "arduino-nano33ble", "chirale", "target",
     "Chirale_TensorFlowLite 2.0.0, CMSIS-NN kernels, portable C paths"),
    ("esp-tflite-micro ESP-NN ANSI C", "esp-idf", "esp", "target",
     "esp-tflite-micro 1.4.0 ESP-NN wrappers + ESP-NN ANSI C"),
    ("esp-tflite-micro ESP-NN generic C", "esp-idf", "esp", "optimized",
     "esp-tflite-micro 1.4.0 ESP-NN wrappers + ESP-NN generic optimized C (NN_OPTIMIZED, "
     "ESP32/ESP32-C3 default)"),
]


def _npz(path: Path, x: np.ndarray, y: np.ndarray, classes: int) -> Path:
    """A dataset file verify reads as is (float inputs, scale 1): everything in test."""
    np.savez(path, x_train=x[:1], y_train=y[:1], x_val=x[:1], y_val=y[:1], x_test=x,
             y_test=y, labels=np.arange(classes).astype(str))
    return path


def _random_inputs(model: Path, n: int, work: Path, classes: int) -> Path:
    """``n`` int8 inputs drawn uniformly (fixed seed), as the floats that quantize to them;
    the labels are placeholders (no accuracy is reported for these)."""
    from tflm_pipeline.tflite.model_info import read_model
    from tflm_pipeline.tflite.quant import dequantize

    t_in = read_model(model.read_bytes()).inputs[0]
    rng = np.random.default_rng(SEED)
    q = rng.integers(-128, 128, size=(n, *t_in.shape[1:]), dtype=np.int64).astype(np.int8)
    y = np.arange(n) % classes
    return _npz(work / f"{model.stem}_random.npz", dequantize(q, t_in).astype(np.float32), y,
                classes)


def _person_images(work: Path) -> Path:
    """person_detect's two test images (96x96 grayscale) as TFLM's example test feeds
    them: the pixel bytes read as int8 (its generate_cc_arrays.py writes them so; read as
    pixels / 127.5 - 1 the model calls both not-a-person)."""
    from PIL import Image

    from tflm_pipeline.tflite.model_info import read_model
    from tflm_pipeline.tflite.quant import dequantize

    t_in = read_model((SHARED / "models" / "person_detect.tflite").read_bytes()).inputs[0]
    folder = SHARED / "models" / "testdata" / "person_detection"
    q = np.stack([np.asarray(Image.open(folder / f).convert("L"), np.uint8).view(np.int8)
                  for f in ("no_person.bmp", "person.bmp")])[..., None]
    x = dequantize(q, t_in).astype(np.float32)
    return _npz(work / "person_images.npz", x, np.array([0, 1]), 2)  # not-a-person, person


def cases(args, work: Path) -> list[dict]:
    models = SHARED / "models"
    out = [{"model": "lenet (run)", "source": args.run, "dataset": None, "data_dir": None,
            "inputs": "MNIST test split of the run", "labels": True}]
    out.append({"model": "trained_lstm_int8.tflite", "source": models / "trained_lstm_int8.tflite",
                "dataset": "mnist", "data_dir": args.mnist_dir,
                "inputs": "MNIST test set (pixels / 255)", "labels": True})
    out.append({"model": "person_detect.tflite", "source": models / "person_detect.tflite",
                "dataset": str(_person_images(work)), "data_dir": None,
                "inputs": "its 2 test images (person.bmp, no_person.bmp)", "labels": True})
    random_cases = [("person_detect.tflite", models / "person_detect.tflite", 200, 2),
                    ("micro_speech_quantized.tflite", models / "micro_speech_quantized.tflite",
                     1000, 4),
                    ("hello_world_int8.tflite", models / "hello_world_int8.tflite", 1000, 1)]
    if args.kws:
        random_cases.append(("kws_ref_model.tflite (MLPerf Tiny DS-CNN)", Path(args.kws), 1000,
                             12))
    for name, model, n, classes in random_cases:
        out.append({"model": name, "source": model, "dataset": str(_random_inputs(
            model, n, work, classes)), "data_dir": None,
            "inputs": f"{n} uniform int8 inputs, seed {SEED}", "labels": False})
    return out


def _merge(old: list[dict], new: list[dict]) -> list[dict]:
    """Earlier results with this run's rows and builds in place of theirs (runs with
    --only / --builds add up), in the order of BUILDS."""
    order = [b[0] for b in BUILDS]
    by_key = {(r["model"], r["inputs"]): r for r in old}
    for r in new:
        key = (r["model"], r["inputs"])
        if key in by_key:
            kept = [b for b in by_key[key]["builds"]
                    if b["build"] not in {n["build"] for n in r["builds"]}]
            r = {**r, "builds": sorted(kept + r["builds"], key=lambda b: order.index(b["build"]))}
        by_key[key] = r
    return list(by_key.values())


def main():
    from tflm_pipeline import verify

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True, help="a LeNet/MNIST tflmp run folder")
    ap.add_argument("--chirale", required=True, help="Chirale_TensorFlowLite library folder")
    ap.add_argument("--esp", required=True, help="esp-tflite-micro (esp-nn beside it)")
    ap.add_argument("--mnist-dir", default=str(SHARED / "datasets" / "mnist"))
    ap.add_argument("--kws", help="MLPerf Tiny kws_ref_model.tflite (DS-CNN)")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--only", help="comma-separated parts of model names to run")
    ap.add_argument("--builds", help="comma-separated parts of build names to run")
    ap.add_argument("--out", default=str(HERE / "results" / "target_agreement.json"))
    args = ap.parse_args()
    trees = {"chirale": args.chirale, "esp": args.esp}
    rows = []
    with tempfile.TemporaryDirectory(prefix="tflmp-agreement-") as tmp:
        for case in cases(args, Path(tmp)):
            if args.only and not any(o in case["model"] for o in args.only.split(",")):
                continue
            row = {k: case[k] for k in ("model", "inputs", "labels")}
            row["builds"] = []
            for name, target, tree, kernels, what in BUILDS:
                if args.builds and not any(b in name for b in args.builds.split(",")):
                    continue
                start = time.monotonic()
                r = verify(case["source"], dataset=case["dataset"], data_dir=case["data_dir"],
                           target=target, tflm_dir=trees[tree], kernels=kernels,
                           workers=args.workers)
                t = r.target
                row.update(sha256=r.sha256, samples=r.samples,
                           pip_accuracy=t["pip_value"] if case["labels"] else None)
                d = t["first_divergence"]
                row["builds"].append({
                    "build": name, "what": what, "target": target, "kernels": t["kernels"],
                    "rounding": t["rounding"],
                    "accuracy": t["value"] if case["labels"] else None,
                    "bit_exact_share": t["bit_exact_share"], "max_diff": t["max_diff"],
                    "differing_samples": int(round((1 - t["bit_exact_share"]) * t["samples"])),
                    "first_divergence": None if d is None else {
                        k: d[k] for k in ("op_index", "op", "layer", "max_diff",
                                          "differing_share")},
                    "seconds": round(time.monotonic() - start, 1)})
                print(json.dumps({"model": row["model"], **row["builds"][-1]}), flush=True)
            rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    rows = _merge(json.loads(out.read_text()) if out.is_file() else [], rows)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| model | inputs | samples | build | accuracy | bit-exact vs pip | max diff | "
          "first differing op |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        acc = "-" if r["pip_accuracy"] is None else f"{r['pip_accuracy']:.4f}"
        print(f"| {r['model']} | {r['inputs']} | {r['samples']} | pip tflite-micro | {acc} | "
              "(itself) | - | - |")
        for b in r["builds"]:
            acc = "-" if b["accuracy"] is None else f"{b['accuracy']:.4f}"
            d = b["first_divergence"]
            op = "-" if d is None else f"#{d['op_index']} {d['op']} (up to {d['max_diff']})"
            print(f"| | | | {b['build']} | {acc} | {b['bit_exact_share']:.2%} | "
                  f"{b['max_diff']} | {op} |")


if __name__ == "__main__":
    main()
