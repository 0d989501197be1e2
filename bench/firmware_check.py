"""Generated firmware against real TFLM trees: golden self-test on the host and on a
Cortex-M4 under QEMU, and the arena constant against arena_used_bytes() measured there.

    python bench/firmware_check.py --run RUN_DIR [--run ...] \\
        --tree arduino-nano33ble=PATH/Chirale_TensorFlowLite \\
        --tree esp-idf=PATH/esp-tflite-micro

For each run, all four targets are generated; each --tree TARGET=PATH checks that
target's project against that TFLM source tree (`tflmp firmware --check`).  TFLM trees
are not part of tflmp (fetch them yourself); results go to
bench/results/firmware_check.json and a Markdown table on stdout.
"""

import argparse
import json
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    from tflm_pipeline import firmware
    from tflm_pipeline.mcu.build_check import check_project
    from tflm_pipeline.mcu.targets import targets

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", action="append", required=True, help="a tflmp run folder")
    ap.add_argument("--tree", action="append", required=True, metavar="TARGET=PATH")
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in map(Path, args.run):
            projects = {t: firmware(run, t, Path(tmp) / run.name / t).project for t in targets()}
            for target, tree in trees.items():
                project = projects[target]
                for r in check_project(project.out_dir, tree):
                    test = next((ln for ln in r.output.splitlines() if "self-test" in ln), "")
                    rows.append({"run": run.name, "model": project.name, "target": target,
                                 "tree": Path(tree).name, "platform": r.platform,
                                 "passed": r.passed, "self_test": test.split(": ", 1)[-1],
                                 "arena_constant": project.arena.bytes,
                                 "arena_binding": project.arena.binding,
                                 "arena_used": r.arena_used_bytes})
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "firmware_check.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| model | target (TFLM tree) | platform | self-test | arena constant | "
          "arena_used_bytes | constant / used |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        qemu = r["platform"].startswith("qemu")
        ratio = (f"{r['arena_constant'] / r['arena_used']:.3f}"
                 f"{'' if r['arena_binding'] == 'final' else ' (' + r['arena_binding'] + ' peak)'}"
                 if qemu and r["arena_used"] else "(64-bit host arena)")
        print(f"| {r['model']} | {r['target']} ({r['tree']}) | {r['platform']} | "
              f"{'PASS' if r['passed'] else 'FAIL'}: {r['self_test'].split(', ')[0]} | "
              f"{r['arena_constant']:,} | {r['arena_used'] or 0:,} | {ratio} |")


if __name__ == "__main__":
    main()
