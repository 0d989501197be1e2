"""Measure the flash bytes of TFLM's code (interpreter core + op kernels) by linking real
Cortex-M programs, and write ``firmware/kernel_sizes.json`` (read by
``tflm_pipeline.mcu.boards.kernel_code_bytes``).

    python bench/kernel_sizes.py \\
        --tree cortex-m4/cmsis-nn=PATH/Chirale_TensorFlowLite \\
        --tree cortex-m4/reference=PATH/tflite-micro \\
        --tree cortex-m0plus/reference=PATH/tflite-micro \\
        --third-party PATH/esp-tflite-micro [--opt=-O2] [--model NAME=PATH ...]

Each ``--tree LIBRARY=PATH`` measures one kernel_sizes.json library; the core comes from
the library name's prefix (cortex-m4, cortex-m7, cortex-m0plus).  The tree is compiled
with tflmp's own source selection and flags (``tflm_pipeline.mcu.build_check``: an
Arduino library builds its CMSIS-NN kernels, other trees the reference ones) at
``--opt`` (default -Os, what Arduino, arduino-pico and STM32Cube release builds use) into
a static library cached under ~/.cache/tflmp/tflm.  A tree without third_party/
flatbuffers (a bare tflite-micro checkout) borrows the header-only third-party code of
``--third-party``.

Then it links, with --gc-sections, newlib-nano and a bare start-up file:
  base      main() using newlib stdio (printf/vfprintf/vsnprintf) and malloc, which any
            board framework already has; subtracted from every figure below
  core      GetModel + MicroInterpreter (AllocateTensors, Invoke) + an empty
            MicroMutableOpResolver
  op X      core + resolver.AddX(), for every op the tree's resolver offers
and takes flash = all allocated sections except .bss (text, rodata, data image, exidx,
init arrays).  Code shared by several ops is found from the linker map: an input section
that appears in the image of more than one single-op program (CMSIS-NN convolution
helpers, quantization utilities, libm functions) belongs to a ``shared`` group of exactly
those ops, counted once; ``ops[X]`` is X's single-op increment minus its shared groups.
Finally programs registering the ops of real models are linked and compared with the
estimate; those numbers go into the JSON's basis strings.

Libraries without a tree here are written as ``same_as`` entries (ESP32: no Xtensa
compiler on this machine).  Uses --jobs compiler processes (default 2).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tflm_pipeline.mcu.build_check import (  # noqa: E402
    CM4_FLAGS, Tree, _Toolchain, build_library, compile_flags, find_tree)

ARCH = {
    "cortex-m4": CM4_FLAGS,
    "cortex-m7": ["-mcpu=cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16", "-mthumb"],
    "cortex-m0plus": ["-mcpu=cortex-m0plus", "-mfloat-abi=soft", "-mthumb"],
}
LINK_SPECS = ["--specs=nano.specs", "--specs=nosys.specs", "-nostartfiles"]
LD_SCRIPT = ROOT / "firmware" / "check" / "mps2_an386.ld"
# Output sections that occupy flash (the .data image is copied from flash at start-up).
FLASH_SECTIONS = (".text", ".ARM.extab", ".ARM.exidx", ".preinit_array", ".init_array",
                  ".fini_array", ".data")
# Op sets checked against a real link: the models in ../shared/models and a LeNet.
MODELS_DIR = ROOT.parent / "shared" / "models"
# "many_ops": the ops tflmp's model zoo and Keras converter produce, all in one program, to
# see whether the shared groups still add up when many ops share code.
EXTRA_SETS = {
    "lenet": ["CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"],
    "many_ops": ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "RESHAPE", "SOFTMAX", "ADD", "MUL", "QUANTIZE", "DEQUANTIZE",
                 "LOGISTIC", "TANH", "RELU", "RELU6", "MEAN", "PAD", "CONCATENATION",
                 "STRIDED_SLICE", "SHAPE", "PACK", "EXPAND_DIMS", "SQUEEZE", "HARD_SWISH",
                 "LEAKY_RELU", "TRANSPOSE"],
}
# Other libraries of boards.yaml, derived from measured ones (see each basis).
DERIVED = {
    "cortex-m7/cmsis-nn": {
        "same_as": "cortex-m4/cmsis-nn", "factor": 1.0,
        "basis": "Cortex-M7 not linked separately: 20 of the Chirale sources that matter "
                 "(interpreter, allocator, flatbuffer parsing, conv/depthwise/FC/softmax/add/"
                 "pool kernels and their CMSIS-NN functions) compiled with -mcpu=cortex-m7 "
                 "-mfpu=fpv5-d16 -Os are 41,088 B of text+rodata against 41,238 B for the "
                 "Cortex-M4 (-0.4%): same Thumb-2 + DSP code paths, so the M4 figure"},
    "esp32/esp-nn": {
        "same_as": "cortex-m4/reference", "factor": 3.0,
        "basis": "ESP32 not measured: no Xtensa compiler here. Cortex-M4 reference figure x "
                 "3.0. esp-tflite-micro compiles TFLM with -O3 (its CMakeLists.txt); the same "
                 "tree at -O3 links 1.22-1.29x the -Os size for the CNN models above on the M4 "
                 "(1.4x with ADD, 1.66x for many element-wise ops). Xtensa code with "
                 "-mlongcalls (literal pools, no Thumb-2) and ESP-NN's kernels linked beside "
                 "the reference fallbacks add more. The one end-to-end figure found, "
                 "espressif/esp-nn#38 (TFLM 1.4.0 + ESP-NN on an ESP32, MobileNetV2-0.25: app "
                 "binary 200,208 B larger than calling ESP-NN directly, including the "
                 "flatbuffer's metadata), is ~3.4x this file's M4 estimate for those ops "
                 "(58,584 B); 3.0 allows for the metadata. Rough, +-30%"},
    "esp32s3/esp-nn": {
        "same_as": "cortex-m4/reference", "factor": 3.2,
        "basis": "ESP32-S3 not measured: no Xtensa compiler here. As esp32/esp-nn (x 3.0, "
                 "from -O3, Xtensa code and one end-to-end ESP32 figure) plus ~7% for the "
                 "S3 SIMD assembly variants ESP-NN links beside its generic C. Rough, +-30%"},
}
DERIVED_M0 = {
    "same_as": "cortex-m4/reference", "factor": 1.2,
    "basis": "Cortex-M0+ not measured in this run: Cortex-M4 reference x 1.2 (ARMv6-M "
             "Thumb-1 code, soft float; an earlier measurement gave 1.2-1.3). Rough"}


def run(cmd, what: str = "") -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        err = r.stderr.strip().splitlines()
        raise RuntimeError(f"{what or cmd[0]} failed: {' | '.join(err[-8:])}")
    return r.stdout


# ----------------------------------------------------------------------------- trees

def load_tree(path: Path, third_party: Path | None, opt: str, cache: Path) -> Tree:
    """tflmp's view of a TFLM tree, with -O``opt`` (the last -O flag wins, and tree
    defines follow tflmp's -O2).  A tree lacking third_party/flatbuffers gets a shim
    folder of symlinks: its own tensorflow/ and signal/ plus ``third_party``'s
    third_party/ (flatbuffers, gemmlowp, ruy, kissfft are header-only or tiny)."""
    try:
        tree = find_tree(path)
    except Exception as e:
        if third_party is None or "flatbuffers" not in str(e):
            raise
        donor = find_tree(third_party).root / "third_party"
        shim = cache / "trees" / hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        (shim / "third_party").mkdir(parents=True, exist_ok=True)
        for sub in ("tensorflow", "signal"):
            if (path / sub).is_dir() and not (shim / sub).exists():
                (shim / sub).symlink_to((path / sub).resolve())
        for d in donor.iterdir():
            if not (shim / "third_party" / d.name).exists():
                (shim / "third_party" / d.name).symlink_to(d.resolve())
        (shim / "SOURCE").write_text(f"{path.resolve()} + third_party of {donor}\n")
        tree = find_tree(shim)
    # -O2 is tflmp's own flag: the library `tflmp firmware --check` builds is reused.
    return tree if opt == "-O2" else replace(tree, defines=tree.defines + [opt])


def toolchain(core: str) -> _Toolchain:
    return _Toolchain(core, "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar",
                      ARCH[core])


def resolver_ops(tree: Tree) -> dict[str, str]:
    """{op name: MicroMutableOpResolver method} for the ops this tree's resolver offers."""
    table = json.loads((ROOT / "firmware" / "tflm_ops.json").read_text())
    header = (tree.root / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    present = set(re.findall(r"TfLiteStatus\s+(Add\w+)\s*\(", header))
    names = {**table["builtin_methods"], **table["custom_methods"]}
    return {op: m for op, m in sorted(names.items()) if m in present}


# ----------------------------------------------------------------------------- programs

RESOLVER_H = ('#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n'
              "typedef tflite::MicroMutableOpResolver<160> Resolver;\n")
MAIN_CC = RESOLVER_H + r'''
#include "tensorflow/lite/micro/micro_interpreter.h"
extern "C" void tflmp_add_ops(void* resolver);
extern "C" int tflmp_framework(void);
extern const unsigned char g_model[];
alignas(16) static uint8_t arena[4096];
int main() {
  static Resolver resolver;
  tflmp_add_ops(&resolver);
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, arena,
                                             sizeof(arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;
  interpreter.input(0)->data.int8[0] = 1;
  if (interpreter.Invoke() != kTfLiteOk) return 2;
  return tflmp_framework() + interpreter.output(0)->data.int8[0];
}
'''
# What a board framework already links: stdio (Serial printing), malloc.
FRAMEWORK_C = r'''
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
static char buf[64];
static int fmt(const char* f, ...) {
  va_list a; va_start(a, f); int n = vsnprintf(buf, sizeof buf, f, a); va_end(a);
  va_start(a, f); vfprintf(stderr, f, a); va_end(a); return n; }
int tflmp_framework(void) {
  char* p = malloc(16); fputs(buf, stderr); free(p);
  return printf("%d %s\n", fmt("%d %s", 1, "x"), buf); }
#ifdef BASE_MAIN
int main(void) { return tflmp_framework(); }
#endif
'''
STARTUP_C = r'''
#include <stdint.h>
extern uint32_t __stack_top;
extern int main(void);
extern void __libc_init_array(void);
extern void exit(int);
void _init(void) {}
void _fini(void) {}
void* __dso_handle = 0;
void Default_Handler(void) { for (;;) {} }
__attribute__((noreturn)) void Reset_Handler(void) { __libc_init_array(); exit(main()); for (;;) {} }
typedef void (*vector_t)(void);
__attribute__((section(".vectors"), used)) const vector_t vector_table[16] = {
    (vector_t)&__stack_top, Reset_Handler, Default_Handler, Default_Handler};
'''
MODEL_CC = 'alignas(16) extern const unsigned char g_model[64] = {0};\n'


class Linker:
    """Links op sets against one built library and reports flash bytes and input sections."""

    def __init__(self, tool: _Toolchain, tree: Tree, lib: Path, ops: dict[str, str], work: Path):
        self.tool, self.lib, self.work, self.ops = tool, lib, work, ops
        cxx = [f for f in compile_flags(tool, tree, False)]
        cc = tool.arch + ["-Os", "-ffunction-sections", "-fdata-sections"]
        (work / "ops.cc").write_text(RESOLVER_H + "".join(
            f'extern "C" void tflmp_add_{op}(void* r) {{ static_cast<Resolver*>(r)->{m}(); }}\n'
            for op, m in ops.items()))
        (work / "main.cc").write_text(MAIN_CC)
        (work / "framework.c").write_text(FRAMEWORK_C)
        (work / "startup.c").write_text(STARTUP_C)
        (work / "model.cc").write_text(MODEL_CC)
        jobs = [([tool.cxx, *cxx, "-c", str(work / s), "-o", str(work / f"{s}.o")], s)
                for s in ("ops.cc", "main.cc", "model.cc")]
        jobs += [([tool.cc, *cc, "-c", str(work / "framework.c"), "-o", str(work / "framework.o")], "f"),
                 ([tool.cc, *cc, "-DBASE_MAIN", "-c", str(work / "framework.c"), "-o",
                   str(work / "base.o")], "b"),
                 ([tool.cc, *cc, "-c", str(work / "startup.c"), "-o", str(work / "startup.o")], "s")]
        if tree.debug_log:
            (work / "debug_log.cc").write_text(tree.debug_log)
            jobs.append(([tool.cxx, *cxx, "-c", str(work / "debug_log.cc"), "-o",
                          str(work / "debug_log.cc.o")], "d"))
        for cmd, what in jobs:
            run(cmd, f"compiling {what}")
        self.objects = [str(work / n) for n in ("main.cc.o", "ops.cc.o", "model.cc.o", "framework.o")]
        if tree.debug_log:
            self.objects.append(str(work / "debug_log.cc.o"))
        self.base = self._link("base", None)[0]

    def _link(self, name: str, ops: list[str] | None) -> tuple[int, dict[str, int]]:
        d = self.work / name
        d.mkdir(exist_ok=True)
        if ops is None:
            objs = [str(self.work / "base.o")]
        else:
            glue = d / "glue.c"
            glue.write_text("".join(f"void tflmp_add_{op}(void*);\n" for op in ops)
                            + "void tflmp_add_ops(void* r) {"
                            + "".join(f" tflmp_add_{op}(r);" for op in ops) + " }\n")
            run([self.tool.cc, *self.tool.arch, "-Os", "-c", str(glue), "-o", str(d / "glue.o")],
                "compiling glue")
            objs = [str(d / "glue.o"), *self.objects, str(self.lib)]
        elf, mapfile = d / "a.elf", d / "a.map"
        run([self.tool.cxx, *self.tool.arch, *LINK_SPECS, "-T", str(LD_SCRIPT),
             "-Wl,--gc-sections", f"-Wl,-Map={mapfile}", str(self.work / "startup.o"), *objs,
             "-lm", "-o", str(elf)], f"linking {name}")
        sizes = run(["arm-none-eabi-size", "-A", str(elf)])
        total = sum(int(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\d+)\s+\d+", sizes, re.M)
                    if m.group(1) in FLASH_SECTIONS)
        secs = map_sections(mapfile)
        for p in d.iterdir():  # keep nothing but the numbers
            p.unlink()
        d.rmdir()
        return total, secs

    def link(self, name: str, ops: list[str]) -> tuple[int, dict[str, int]]:
        """Flash bytes above the base image, and the flash input sections."""
        total, secs = self._link(name, ops)
        return total - self.base, secs


def map_sections(mapfile: Path) -> dict[str, int]:
    """{'section object': bytes} of the input sections placed in flash output sections."""
    out: dict[str, int] = {}
    text = mapfile.read_text(errors="replace").split("Linker script and memory map", 1)[1]
    current, pending = None, None
    for line in text.splitlines():
        if line and not line[0].isspace():
            current = line.split()[0]
            pending = None
            continue
        if current not in FLASH_SECTIONS:
            continue
        parts = line.split()
        if pending is not None:
            if len(parts) >= 3 and parts[0].startswith("0x") and parts[1].startswith("0x"):
                parts = [pending] + parts
            pending = None
        elif len(parts) == 1 and line.startswith(" ."):
            pending = parts[0]  # long section names wrap onto the next line
            continue
        if len(parts) >= 4 and parts[0].startswith(".") and parts[1].startswith("0x") \
                and parts[2].startswith("0x"):
            size = int(parts[2], 16)
            if size:
                key = f"{parts[0]} {os.path.basename(' '.join(parts[3:]))}"
                out[key] = out.get(key, 0) + size
    return out


# ----------------------------------------------------------------------------- analysis

def measure(linker: Linker, ops: list[str], jobs: int) -> dict:
    core, core_secs = linker.link("core", [])

    def one(op):
        try:
            total, secs = linker.link(f"op_{op}", [op])
        except RuntimeError as e:
            return op, None, str(e)[:300]
        return op, total - core, {k: v for k, v in secs.items() if k not in core_secs}

    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(one, ops))
    failed = {op: err for op, m, err in results if m is None}
    marginal = {op: m for op, m, _ in results if m is not None}
    users: dict[str, set] = {}
    size: dict[str, int] = {}
    for op, m, secs in results:
        if m is None:
            continue
        for key, n in secs.items():
            users.setdefault(key, set()).add(op)
            size[key] = max(size.get(key, 0), n)
    groups: dict[tuple, int] = {}
    for key, us in users.items():
        if len(us) > 1:
            g = tuple(sorted(us))
            groups[g] = groups.get(g, 0) + size[key]
    own = {op: max(0, m - sum(b for g, b in groups.items() if op in g))
           for op, m in marginal.items()}
    shared = [{"ops": list(g), "bytes": b}
              for g, b in sorted(groups.items(), key=lambda x: (-x[1], x[0]))]
    return {"core": core, "marginal": marginal, "ops": own, "shared": shared,
            "failed": failed}


def estimate(entry: dict, ops: list[str]) -> int:
    """The formula of tflm_pipeline.mcu.boards.kernel_code_bytes."""
    ops = list(dict.fromkeys(ops))
    known = [o for o in ops if o in entry["ops"]]
    total = entry["core"] + sum(entry["ops"][o] for o in known)
    total += sum(g["bytes"] for g in entry["shared"] if set(g["ops"]) & set(known))
    return total + entry["unmeasured_op"] * (len(ops) - len(known))


def model_sets(extra: list[str]) -> dict[str, list[str]]:
    """Op sets to validate with: ../shared/models, --model NAME=PATH, EXTRA_SETS."""
    from tflm_pipeline.tflite.model_info import read_model

    sets = {}
    models = [(p.stem, p) for p in sorted(MODELS_DIR.glob("*.tflite"))]
    models += [(n, Path(p)) for n, _, p in (m.partition("=") for m in extra)]
    for name, p in models:
        try:
            sets[name] = list(dict.fromkeys(read_model(p).op_names))
        except Exception as e:  # noqa: BLE001 - a model we cannot read is just skipped
            print(f"skipping {p.name}: {e}", file=sys.stderr)
    sets.update(EXTRA_SETS)
    return sets


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", required=True, metavar="LIBRARY=PATH",
                    help="kernel_sizes.json library (core/kernels, e.g. cortex-m4/cmsis-nn) "
                         "and the TFLM tree to measure it with")
    ap.add_argument("--third-party", type=Path,
                    help="TFLM tree whose third_party/ a bare tflite-micro checkout borrows")
    ap.add_argument("--opt", default="-Os", help="optimization level of the TFLM build")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "firmware" / "kernel_sizes.json")
    ap.add_argument("--raw", type=Path, help="also write per-op single-op increments here")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="another .tflite whose op set is linked and compared with the estimate")
    ap.add_argument("--note", action="append", default=[], metavar="LIBRARY=TEXT",
                    help="what the tree is (version, commit), for the basis string")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    cache = Path(os.environ.get("TFLMP_CACHE", Path.home() / ".cache" / "tflmp"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.jobs < (os.cpu_count() or 1):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.jobs]))

    specs = []
    for spec in args.tree:
        library, _, path = spec.partition("=")
        core = library.split("/")[0]
        if core not in ARCH or not path:
            sys.exit(f"--tree {spec}: want LIBRARY=PATH with LIBRARY starting with "
                     f"{', '.join(ARCH)}")
        tree = load_tree(Path(path), args.third_party, args.opt, cache)
        tool = toolchain(core)
        print(f"{library}: building {tree.root} ({tree.kernels}, {args.opt}) ...", file=sys.stderr)
        lib = build_library(tool, tree, cache)
        specs.append((library, Path(path), tree, tool, lib))
    if args.build_only:
        return

    sets = model_sets(args.model)
    notes = dict(n.split("=", 1) for n in args.note)
    libraries, raw = {}, {}
    for library, path, tree, tool, lib in specs:
        ops = resolver_ops(tree)
        with tempfile.TemporaryDirectory(prefix="tflmp-ksz-") as tmp:
            linker = Linker(tool, tree, lib, ops, Path(tmp))
            m = measure(linker, list(ops), args.jobs)
            unmeasured = sorted(m["marginal"].values())
            entry = {"core": m["core"], "ops": m["ops"], "shared": m["shared"],
                     # median single-op increment: for ops this tree does not offer
                     "unmeasured_op": int(unmeasured[len(unmeasured) // 2])}
            checks, seen = {}, {}
            for name, op_set in sets.items():
                if tuple(op_set) in seen:  # e.g. the float and int8 hello_world
                    checks[seen[tuple(op_set)]]["also"] = checks[seen[tuple(op_set)]].get(
                        "also", []) + [name]
                    continue
                seen[tuple(op_set)] = name
                usable = [o for o in op_set if o in ops]
                if len(usable) != len(op_set):
                    checks[name] = {"ops": op_set, "skipped": "ops not in this tree: " + ", ".join(
                        o for o in op_set if o not in ops)}
                    continue
                linked, _ = linker.link(f"set_{name}", op_set)
                est = estimate(entry, op_set)
                checks[name] = {"ops": op_set, "linked": linked, "estimate": est,
                                "error_pct": round(100 * (est - linked) / linked, 1)}
        checked = {k: v for k, v in checks.items() if "linked" in v}
        worst = max((abs(v["error_pct"]) for v in checked.values()), default=0.0)
        flags = " ".join(a for a in compile_flags(tool, tree, False) if not a.startswith("-I")
                         and not (a == "-O2" and args.opt != "-O2"))
        entry["basis"] = (
            f"measured on {notes.get(library) or describe(path)} ({tree.kernels}"
            + (f", third_party/ headers of the tree in {Path(args.third_party).name}/"
               if tree.root != path and (tree.root / "SOURCE").is_file() else "")
            + f"), {tool.version()}, {flags}; "
            f"programs linked with {' '.join(LINK_SPECS)} --gc-sections, flash = text + "
            f"rodata + data image minus a main() that uses stdio and malloc "
            f"({linker.base:,} B, the board framework's); "
            f"estimate vs linked: "
            + ", ".join(f"{k} {v['estimate']:,} vs {v['linked']:,} B ({v['error_pct']:+.1f}%)"
                        for k, v in checked.items())
            + f"; worst {worst:.1f}%")
        libraries[library] = {"basis": entry["basis"], "core": entry["core"],
                              "ops": entry["ops"], "shared": entry["shared"],
                              "unmeasured_op": entry["unmeasured_op"]}
        raw[library] = {"marginal": m["marginal"], "failed": m["failed"], "checks": checks}
        print(f"{library}: core {m['core']:,} B, {len(m['ops'])} ops, "
              f"{len(m['shared'])} shared groups, failed {list(m['failed'])}", file=sys.stderr)
        for k, v in checks.items():
            print(f"  {k}: {v}", file=sys.stderr)

    measured = set(libraries)
    if args.out.is_file():  # keep libraries measured by an earlier run with other trees
        old = json.loads(args.out.read_text()).get("libraries", {})
        libraries = {**old, **libraries}
    derived = {**DERIVED, "cortex-m0plus/reference": DERIVED_M0}
    for name, d in derived.items():
        if name not in measured and d["same_as"] in libraries and "same_as" in libraries.get(
                name, {"same_as": ""}):
            libraries[name] = dict(d)
    order = ["cortex-m4/cmsis-nn", "cortex-m4/reference", "cortex-m7/cmsis-nn",
             "cortex-m0plus/reference", "esp32/esp-nn", "esp32s3/esp-nn"]
    libraries = dict(sorted(libraries.items(),
                            key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0])))
    out = {"comment": (
        "Flash bytes (code + read-only data + data image) of TFLM's interpreter core and "
        "of each op's kernel, measured by bench/kernel_sizes.py: each op linked alone into "
        "a bare-metal program (MicroMutableOpResolver + MicroInterpreter AllocateTensors/"
        "Invoke, --gc-sections) and compared with the empty-resolver program; input "
        "sections (from the linker map) that several single-op programs link are listed "
        "once under 'shared' with exactly the ops that pull them in, and 'ops' holds each "
        "op's increment without them. Estimate = core + ops + shared groups touching the "
        "used ops + unmeasured_op per op not listed; 'same_as' entries scale another "
        f"library by 'factor'. TFLM compiled at {args.opt} (what Arduino, arduino-pico and "
        "STM32Cube release builds use; measured once with --opt: Chirale at -O2 links 16-22% "
        "larger, upstream at -O3 (esp-tflite-micro's level) 22-66% larger). "
        "Checked against programs linking exactly the ops of real models (see each basis): "
        + "; ".join(f"{lib} estimate {min(v['error_pct'] for v in r['checks'].values() if 'linked' in v):+.1f}"
                    f" to {max(v['error_pct'] for v in r['checks'].values() if 'linked' in v):+.1f}% "
                    "of the linked size" for lib, r in raw.items())
        + "."), "libraries": libraries}
    args.out.write_text(dump(out) + "\n")
    if args.raw:
        args.raw.write_text(json.dumps(raw, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def dump(value, indent: int = 0) -> str:
    """JSON with one line per op and per shared group (json.dumps(indent=...) would give
    every op name of a group its own line)."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value and any(isinstance(v, (dict, list)) for v in value.values()):
        items = [f"{pad}{json.dumps(k)}: {dump(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, dict) and len(value) > 4:
        items = [f"{pad}{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "[\n" + ",\n".join(pad + json.dumps(v) for v in value) + "\n" + " " * indent + "]"
    return json.dumps(value)


def describe(path: Path) -> str:
    props = path / "library.properties"
    if props.is_file():
        kv = dict(line.split("=", 1) for line in props.read_text().splitlines() if "=" in line)
        return f"{kv.get('name', path.name)} {kv.get('version', '')}".strip()
    return f"TFLM tree {path.name}"


if __name__ == "__main__":
    main()
