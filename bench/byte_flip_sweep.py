"""Single-byte changes of a real model through the real CLI: every mutant must give exit
0 or one `tflmp: error:` line with exit 2; never a traceback, never a signal.

    python bench/byte_flip_sweep.py --model ../shared/models/person_detect.tflite \\
        --positions 200 [--dataset D.npz] [--commands convert,profile,verify,firmware]
        [--fresh]

Each command line runs through ``tflm_pipeline.cli.main`` in a long-lived worker process
(what ``tflmp`` runs, without paying Python and import start-up per mutant); a worker
that dies is a signal, and the next command gets a new one.  ``--fresh`` starts a new
``python -m tflm_pipeline.cli`` for every command instead.

Positions are spread evenly over the flatbuffer's structure (everything outside the
weight payloads: tables, vectors, offsets, shapes, quantization) and over the payloads.
Each position is changed by XOR 0x01, 0x10, 0x80 and 0xFF.  Results go to
bench/results/byte_flip_<model>.json (``_<commands>`` added for a subset).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import select
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DELTAS = (0x01, 0x10, 0x80, 0xFF)
ALL_COMMANDS = "convert,profile,verify,firmware"
TIMEOUT = 600  # seconds one command may take before it counts as a hang


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


def serve() -> None:
    """Worker: read one JSON argv per line, run it as ``tflmp`` would, answer with the
    exit code and what went to stderr (an exception escaping ``main`` is a traceback)."""
    import traceback

    from tflm_pipeline import cli

    for line in sys.stdin:
        argv, err = json.loads(line), io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 - exactly what the sweep looks for
                traceback.print_exc()
                code = 1
        sys.__stdout__.write(json.dumps({"exit": code, "stderr": err.getvalue()}) + "\n")
        sys.__stdout__.flush()


class Worker:
    """A ``serve()`` process, restarted after it dies."""

    def __init__(self):
        self.proc = None

    def run(self, argv: list[str]) -> tuple[int, str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        if not select.select([self.proc.stdout], [], [], TIMEOUT)[0]:  # a hang
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return -1, f"no answer in {TIMEOUT} s"
        answer = self.proc.stdout.readline()
        if not answer:  # the worker died: report how
            code = self.proc.wait()
            stderr = self.proc.stderr.read()
            self.proc = None
            return code, stderr
        result = json.loads(answer)
        return result["exit"], result["stderr"]


def fresh(argv: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run([sys.executable, "-m", "tflm_pipeline.cli", *argv],
                           capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, f"no answer in {TIMEOUT} s"
    return p.returncode, p.stderr


def main():
    if sys.argv[1:] == ["--serve"]:
        return serve()
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--positions", type=int, default=200)
    ap.add_argument("--dataset", help="data for verify (default: digits)")
    ap.add_argument("--commands", default=ALL_COMMANDS)
    ap.add_argument("--fresh", action="store_true", help="a new tflmp process per command")
    args = ap.parse_args()
    model = args.model.read_bytes()
    commands = args.commands.split(",")
    run = fresh if args.fresh else Worker().run
    picked = positions(model, args.positions)
    outcomes, failures = collections.Counter(), []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mutant = tmp / "m.tflite"
        for n, pos in enumerate(picked):
            for delta in DELTAS:
                data = bytearray(model)
                data[pos] ^= delta
                mutant.write_bytes(bytes(data))
                for command in commands:
                    argv = {"convert": ["convert", mutant, "--c-array", "--out", tmp / "c"],
                            "profile": ["profile", mutant],
                            "firmware": ["firmware", mutant, "--target", "esp32", "--out",
                                         tmp / "fw"],
                            "verify": ["verify", mutant, "--workers", "1", "--dataset",
                                       args.dataset or "digits"]}[command]
                    code, stderr = run([str(a) for a in argv])
                    one_line = stderr.strip().count("\n") == 0
                    if code == 0:
                        outcomes[f"{command}: ran"] += 1
                    elif code == 2 and one_line and "Traceback" not in stderr:
                        outcomes[f"{command}: one-line error"] += 1
                    else:
                        outcomes[f"{command}: BROKEN (exit {code})"] += 1
                        failures.append({"position": pos, "xor": delta, "command": command,
                                         "exit": code, "stderr": stderr[-2000:]})
            if n % 20 == 0:
                print(f"{n}/{len(picked)} positions, {time.monotonic() - t0:.0f} s, "
                      f"{len(failures)} broken", file=sys.stderr)
    result = {"date": date.today().isoformat(), "model": args.model.name,
              "bytes": len(model), "positions": len(picked),
              "mutants": len(picked) * len(DELTAS), "mode": "fresh" if args.fresh else "worker",
              "outcomes": dict(sorted(outcomes.items())), "failures": failures,
              "seconds": round(time.monotonic() - t0)}
    (HERE / "results").mkdir(exist_ok=True)
    suffix = "" if args.commands == ALL_COMMANDS else "_" + "_".join(commands)
    (HERE / "results" / f"byte_flip_{args.model.stem}{suffix}.json").write_text(
        json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    print(f"{len(failures)} broken runs")


if __name__ == "__main__":
    main()
