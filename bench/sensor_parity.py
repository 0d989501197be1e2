"""Raw sensor rows -> device int8 inputs -> TFLM against training, on a Daphnet run.

    PYTHONPATH=$PWD python bench/sensor_parity.py [--run RUN_DIR]

Without --run it trains the run first (tflmp train --model autoencoder on
../shared/datasets/timeseries/daphnet/S06R02E0.csv, 1 s windows every 0.25 s, 3 epochs +
1 QAT epoch).  Then: the Nano 33 BLE project of the run; every test window's raw rows
through the project's C on this host and on a Cortex-M4F under QEMU (mcu.sensor_parity);
a sweep of raw values on and around every rounding boundary of every channel with the
project's own constants, with and without the guard against fused multiply-add; the
Cortex-M4 flash/RAM of the raw -> int8 code.  Results: bench/results/sensor_parity.json
and Markdown on stdout.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DAPHNET = REPO.parent / "shared" / "datasets" / "timeseries" / "daphnet" / "S06R02E0.csv"


def train(out: Path) -> Path:
    cmd = [sys.executable, "-m", "tflm_pipeline.cli", "train", "--model", "autoencoder",
           "--dataset", str(DAPHNET), "--window", "64", "--stride", "16", "--label-column",
           "is_anomaly", "--epochs", "3", "--qat-epochs", "1", "--out", str(out)]
    subprocess.run(cmd, check=True)
    return out


def boundary_sweep(code_dir: Path, name: str, pre, t_in, platforms) -> dict:
    """Raw values on and within 12 ulp of every rounding boundary of every channel."""
    from tflm_pipeline.mcu.raw_input_check import run_raw_inputs
    from tflm_pipeline.tflite.quant import quantize

    scale = float(t_in.scales[0])
    cols = []
    for c in range(pre.channels):
        near = []
        zero = int(t_in.zero_points[0])  # roundf acts on x / scale, before the zero point
        for k in range(-130 - zero, 130 - zero):
            centre = np.float32(((k + 0.5) * scale - pre.offset[c]) / pre.scale[c])
            up = down = centre
            near.append(centre)
            for _ in range(12):
                up = np.nextafter(up, np.float32(np.inf))
                down = np.nextafter(down, np.float32(-np.inf))
                near += [up, down]
        cols.append(near)
    rows = min(map(len, cols))
    window = int(np.prod(pre.input_shape)) // pre.channels
    rows -= rows % window
    raw = np.stack([np.array(c[:rows], np.float32) for c in cols], axis=1).reshape(
        -1, window * pre.channels)
    x = pre.apply(raw).reshape(len(raw), -1)
    v = x / np.float32(scale)
    expected = quantize(x, t_in)
    out = {"values": int(raw.size),
           "exact_ties": int(np.sum(v - np.trunc(v) == np.copysign(np.float32(0.5), v)))}
    with tempfile.TemporaryDirectory() as tmp:
        fused = Path(tmp)
        for f in code_dir.glob(f"{name}_model_settings.h"):
            (fused / f.name).write_text(f.read_text().replace("volatile float scaled",
                                                              "float scaled"))
        for platform in platforms:
            got = run_raw_inputs(code_dir, name, raw, platform=platform).from_raw
            bad = run_raw_inputs(fused, name, raw, platform=platform).from_raw
            out[platform] = {"differing": int(np.sum(got != expected)),
                             "differing_without_volatile": int(np.sum(bad != expected))}
    return out


def main():
    from tflm_pipeline import firmware
    from tflm_pipeline.mcu.raw_input_check import raw_input_size
    from tflm_pipeline.mcu.sensor_parity import sensor_parity
    from tflm_pipeline.preprocessing import Preprocessing
    from tflm_pipeline.runs import resolve
    from tflm_pipeline.tflite.model_info import read_model_bytes, read_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a Daphnet run folder (default: train one)")
    args = ap.parse_args()
    platforms = ("host", "cortex-m4") if shutil.which("qemu-system-arm") else ("host",)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else train(Path(tmp) / "daphnet")
        t0 = time.monotonic()
        project = firmware(run, "arduino-nano33ble", Path(tmp) / "sketch").project
        parity = sensor_parity(run, project.out_dir, project.name, platforms=platforms)
        pre = Preprocessing.load(run / "preprocessing.json")
        info = read_model(read_model_bytes(resolve(run).model_path))
        sweep = boundary_sweep(project.out_dir, project.name, pre, info.inputs[0], platforms)
        size = raw_input_size(project.out_dir, project.name)
        seconds = time.monotonic() - t0
    result = {"run": run.name, "input_shape": list(pre.input_shape),
              "sample_rate_hz": pre.sample_rate_hz, "parity": parity.to_dict(),
              "boundary_sweep": sweep, "cortex_m4_size": size.to_dict(),
              "seconds": round(seconds, 1)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "sensor_parity.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"\n| check | samples | result |\n| --- | --- | --- |")
    for platform, p in parity.platforms.items():
        print(f"| raw rows -> {platform} C int8 inputs vs tflmp's | {parity.samples} test windows "
              f"x {parity.values} values | {p['bytes_differing']} bytes differ |")
        print(f"| raw -> {platform} int8 -> TFLM {parity.metric} vs the run's | "
              f"{parity.samples} | {p['device']:.4f} vs {parity.training:.4f} |")
    for platform in platforms:
        s = sweep[platform]
        print(f"| boundary sweep ({sweep['values']} values, {sweep['exact_ties']} exact ties), "
              f"{platform} | | {s['differing']} differ ({s['differing_without_volatile']} "
              "without the volatile product) |")


if __name__ == "__main__":
    main()
