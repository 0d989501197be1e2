"""Single-byte changes of a real model through the real CLI: every mutant must give exit
0 or one `tflmp: error:` line with exit 2; never a traceback, never a signal.

    python bench/byte_flip_sweep.py --model ../shared/models/person_detect.tflite \\
        --positions 200 [--dataset D.npz] [--commands convert,profile,verify]

Positions are spread evenly over the flatbuffer's structure (everything outside the
weight payloads: tables, vectors, offsets, shapes, quantization) and over the payloads.
Each position is changed by XOR 0x01, 0x10, 0x80 and 0xFF.  Results go to
bench/results/byte_flip_<model>.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DELTAS = (0x01, 0x10, 0x80, 0xFF)


def positions(model: bytes, count: int) -> list[int]:
    """``count`` positions over the structure and a quarter as many over the payloads."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.Model.GetRootAs(model, 0)
    payload = np.zeros(len(model), bool)
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))
            payload[start:start + b.DataLength()] = True
    structure, data = np.flatnonzero(~payload), np.flatnonzero(payload)
    picks = [structure[np.linspace(0, len(structure) - 1, count).astype(int)]]
    if len(data):
        picks.append(data[np.linspace(0, len(data) - 1, max(1, count // 4)).astype(int)])
    return sorted(set(np.concatenate(picks).tolist()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--positions", type=int, default=200)
    ap.add_argument("--dataset", help="data for verify (default: digits for 8x8x1 models)")
    ap.add_argument("--commands", default="convert,profile,verify")
    args = ap.parse_args()
    model = args.model.read_bytes()
    commands = args.commands.split(",")
    outcomes, failures = collections.Counter(), []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mutant = tmp / "m.tflite"
        for pos in positions(model, args.positions):
            for delta in DELTAS:
                data = bytearray(model)
                data[pos] ^= delta
                mutant.write_bytes(bytes(data))
                for command in commands:
                    argv = {"convert": ["convert", mutant, "--c-array", "--out", tmp / "c"],
                            "profile": ["profile", mutant],
                            "verify": ["verify", mutant, "--dataset",
                                       args.dataset or "digits"]}[command]
                    p = subprocess.run([sys.executable, "-m", "tflm_pipeline.cli",
                                        *map(str, argv)], capture_output=True, text=True,
                                       timeout=600)
                    one_line = p.stderr.strip().count("\n") == 0
                    if p.returncode == 0:
                        outcomes[f"{command}: ran"] += 1
                    elif p.returncode == 2 and one_line and "Traceback" not in p.stderr:
                        outcomes[f"{command}: one-line error"] += 1
                    else:
                        outcomes[f"{command}: BROKEN (exit {p.returncode})"] += 1
                        failures.append({"position": pos, "xor": delta, "command": command,
                                         "exit": p.returncode, "stderr": p.stderr[-2000:]})
    result = {"date": date.today().isoformat(), "model": args.model.name,
              "bytes": len(model), "positions": len(positions(model, args.positions)),
              "mutants": len(positions(model, args.positions)) * len(DELTAS),
              "outcomes": dict(sorted(outcomes.items())), "failures": failures,
              "seconds": round(time.monotonic() - t0)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"byte_flip_{args.model.stem}.json").write_text(
        json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    print(f"{len(failures)} broken runs")


if __name__ == "__main__":
    main()
