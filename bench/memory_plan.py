"""Offline memory plans against TFLM's greedy plan and the lower bound.

    python bench/memory_plan.py --shared ../shared [--cache DIR]

Models: every .tflite in ../shared/models, and each zoo model at its reference shape
(untrained weights, one epoch on random data so the quantization is not degenerate:
memory does not depend on training).  Per model: activation bytes of TFLM's greedy
plan, of tflmp's offline plan and the lower bound (largest sum of tensors alive at one
op), the gap to the bound, and arena_used_bytes() of the pip TFLM interpreter (reference
kernels) before and after writing the plan, with the outputs compared bit for bit.

Then 200 random sets of lifetimes, to see the search where greedy loses more often.

Writes bench/results/memory_plan.json and prints a Markdown table for docs/BENCHMARKS.md.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
# name: (input shape, classes) at the zoo module's reference shape
ZOO = {"lenet": ((28, 28, 1), 10), "dscnn": ((49, 10, 1), 12),
       "mobilenet_v1": ((96, 96, 3), 2), "resnet8": ((32, 32, 3), 10),
       "autoencoder": ((640,), 0), "cnn1d": ((128, 3), 6), "mlp": ((64,), 10)}
# the Arduino target's kernels: their scratch buffers go around the plan
CMSIS = "chirale-2.0.0-cmsis-nn"


def zoo_model(name: str, cache: Path) -> bytes:
    """The zoo model ``name`` at its reference shape as full int8 (cached)."""
    path = cache / f"{name}_reference_int8.tflite"
    if path.exists():
        return path.read_bytes()
    from zoo import reference_int8  # bench/zoo.py: one epoch on seeded random data

    _, flatbuffer = reference_int8(name, *ZOO[name])
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(flatbuffer)
    return flatbuffer


def sample_inputs(info, n=8):
    rng = np.random.default_rng(0)
    out = []
    for t in info.inputs:
        shape = (n, *t.shape[1:])
        if t.dtype.kind == "f":
            out.append(rng.random(shape, dtype=np.float32).astype(t.dtype))
        else:
            lo, hi = np.iinfo(t.dtype).min, np.iinfo(t.dtype).max
            out.append(rng.integers(lo, hi, shape, endpoint=True).astype(t.dtype))
    return out


def row(name: str, model: bytes) -> dict:
    from tflm_pipeline.mcu import arena, arena_plan
    from tflm_pipeline.tflite import memory_plan, offline_plan
    from tflm_pipeline.tflite.model_info import read_model
    from tflm_pipeline.tflm import interpreter

    info = read_model(model)
    t = time.monotonic()
    planned, outcome = arena_plan.plan_model(model)
    seconds = time.monotonic() - t
    plan = outcome.plan or offline_plan.compute(info)  # unknown scratch: the tensors alone
    big = 4 << 20
    before = interpreter.recorded_allocations(model, big)
    after = interpreter.recorded_allocations(planned, big)
    xs = sample_inputs(info)
    same = all(np.array_equal(a, b) for a, b in zip(interpreter.run(model, xs, workers=1),
                                                   interpreter.run(planned, xs, workers=1)))
    cmsis = {}
    for release in (CMSIS,):
        scratch, unknown = arena.scratch_buffers(info, release)
        if not unknown:
            cmsis[release] = (memory_plan.plan(info, scratch, offline=False).planned_bytes,
                              memory_plan.plan(read_model(planned), scratch).planned_bytes,
                              memory_plan.plan(info, scratch).lower_bound)
    e0 = arena.estimate(info) if info.subgraphs == 1 else None
    e1 = arena.estimate(read_model(planned)) if info.subgraphs == 1 else None
    return {"model": name, "greedy_bytes": plan.greedy_bytes, "plan_bytes": plan.planned_bytes,
            "lower_bound": plan.lower_bound, "gap_pct": round(100 * plan.gap, 2),
            "method": plan.method, "optimal": plan.optimal, "plan_seconds": round(seconds, 3),
            "written": outcome.applied, "reason": outcome.reason,
            "tflm_used_before": before.head + before.tail,
            "tflm_used_after": after.head + after.tail,
            "tflm_head_before": before.head, "tflm_head_after": after.head,
            "outputs_bit_identical": same, "cmsis_nn": cmsis,
            "arena_32bit_before": e0.bytes if e0 else None,
            "arena_32bit_after": e1.bytes if e1 else None}


def table(rows) -> str:
    lines = ["| model | greedy B | plan B | lower bound B | gap | written | "
             "arena_used_bytes() pip TFLM | 32-bit arena TFLM 2026 | "
             "CMSIS-NN greedy / plan / bound | outputs |",
             "|---|---:|---:|---:|---:|---|---|---|---|---|"]
    for r in rows:
        written = "yes" if r["written"] else "no " + NOTES[_note(r["reason"])]
        plan = (f"{r['plan_bytes']:,}" if "scratch" not in r["reason"]
                else f"({r['plan_bytes']:,}) {NOTES['scratch']}")
        c = r["cmsis_nn"].get(CMSIS)
        cmsis = " / ".join(f"{v:,}" for v in c) if c else "unknown scratch"
        lines.append(
            f"| {r['model']} | {r['greedy_bytes']:,} | {plan} | "
            f"{r['lower_bound']:,} | {r['gap_pct']:.1f}% | {written} | "
            f"{r['tflm_used_before']:,} -> {r['tflm_used_after']:,} | "
            f"{r['arena_32bit_before']:,} -> {r['arena_32bit_after']:,} | {cmsis} | "
            f"{'bit-identical' if r['outputs_bit_identical'] else 'DIFFER'} |")
    lines += ["", *(f"{mark} {text}" for mark, text in FOOTNOTES.items())]
    return "\n".join(lines)


NOTES = {"bound": "(a)", "scratch": "(b)", "other": "(c)"}
FOOTNOTES = {
    "(a)": "TFLM's greedy plan already meets the lower bound.",
    "(b)": "an op's kernel scratch is not in tflmp's release table, so a plan cannot be "
           "checked: the figure places the tensors alone and is not written.",
    "(c)": "no plan saves bytes on every release's kernels.",
}


def _note(reason: str) -> str:
    return ("bound" if "lower bound" in reason else "scratch" if "scratch" in reason
            else "other")


def synthetic(seed: int = 1, cases: int = 200) -> dict:
    """Random lifetimes (8-64 buffers of 16 B to 1 KiB living 1-13 scopes): how often
    greedy and the plan miss the lower bound, and by how much."""
    import random

    from tflm_pipeline.tflite import memory_plan, offline_plan

    rng = random.Random(seed)
    out = {"cases": cases, "greedy_above_bound": 0, "plan_above_bound": 0,
           "worst_greedy_gap_pct": 0.0, "worst_plan_gap_pct": 0.0, "slowest_s": 0.0}
    for _ in range(cases):
        n = rng.choice([8, 16, 32, 64])
        life = rng.choice([2, 6, 12])
        reqs = []
        for _ in range(n):
            first = rng.randint(0, n // 2)
            reqs.append((16 * rng.randint(1, 64), first, first + rng.randint(0, life)))
        greedy = max(o + r[0] for o, r in zip(memory_plan.greedy_offsets(reqs), reqs))
        t = time.monotonic()
        found = offline_plan.place(reqs)
        out["slowest_s"] = round(max(out["slowest_s"], time.monotonic() - t), 3)
        bound = found.lower_bound
        out["greedy_above_bound"] += greedy > bound
        out["plan_above_bound"] += found.peak > bound
        out["worst_greedy_gap_pct"] = round(max(out["worst_greedy_gap_pct"],
                                                100 * (greedy / bound - 1)), 2)
        out["worst_plan_gap_pct"] = round(max(out["worst_plan_gap_pct"],
                                              100 * (found.peak / bound - 1)), 2)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True, help="the ../shared folder")
    ap.add_argument("--cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "tflmp-zoo-reference",
                    help="where the converted zoo models are kept between runs")
    args = ap.parse_args()
    rows = []
    for path in sorted((Path(args.shared) / "models").glob("*.tflite")):
        rows.append(row(path.name, path.read_bytes()))
        print(rows[-1], flush=True)
    for name, (shape, _) in ZOO.items():
        rows.append(row(f"zoo {name} {'x'.join(map(str, shape))}", zoo_model(name, args.cache)))
        print(rows[-1], flush=True)
    random_cases = synthetic()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "memory_plan.json").write_text(
        json.dumps({"models": rows, "random_lifetimes": random_cases}, indent=1) + "\n")
    print(table(rows))
    print(random_cases)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build-only"]:
        for n in ZOO:
            zoo_model(n, Path(sys.argv[2]))
    else:
        main()
