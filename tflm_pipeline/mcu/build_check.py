"""The build check behind ``tflmp firmware --check --tflm-dir PATH``: compile a generated
project's C++ against a real TFLM source tree and run its golden self-test on this host
and, when ``arm-none-eabi-g++`` and ``qemu-system-arm`` are installed, on a Cortex-M4
under QEMU.

The tree is compiled the way its board build compiles it: an Arduino library's
optimized kernels (CMSIS-NN) replace the reference ones, other trees use the reference
kernels; ``verify --target`` may ask for a tree's own optimized kernels (ESP-NN's ANSI C
too), see kernel_choice.py.  The Cortex-M4 build uses the target's optimisation level
(``optimize`` in ``targets.yaml``: -Os for the Arduino mbed core and PlatformIO), so the
instructions QEMU counts are those of the code the board runs; host builds stay at
``HOST_OPTIMIZE``.  The static library is cached per tree content (sources and headers),
kernel choice, compiler and flags (optimisation level included)
(``~/.cache/tflmp/tflm``), since a full Cortex-M4 build takes minutes on two cores.
TFLM source is never part of tflmp.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import TflmpError
from ..firmware_files import path as firmware_file
from ..firmware_files import render
from ..firmware_project import read_project
from ..progress import Progress
from .kernel_choice import select_kernels
from .targets import get_target

log = logging.getLogger(__name__)

CM4_FLAGS = ["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-mthumb"]
HOST_OPTIMIZE = "-O2"  # host builds (and Trees no target's level was given to)
# every build's flags after its optimisation level
BUILD_FLAGS = ["-DTF_LITE_DISABLE_X86_NEON", "-DNDEBUG",
               "-DTFLMP_CHECK", "-ffunction-sections", "-fdata-sections",
               "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-w"]
COMMON_FLAGS = [HOST_OPTIMIZE, *BUILD_FLAGS]  # a host-level compile by hand
CXX_FLAGS = ["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"]
C_FLAGS = ["-std=c11"]
# Sources no board build compiles: tests, test doubles, board glue that needs Arduino.h.
_SKIP_STEMS = {"test_helpers", "test_helper_custom_ops", "fake_micro_context",
               "mock_micro_graph", "kernel_runner", "system_setup", "micro_test",
               "micro_speech_quantized_model_data"}
# (hexagon, xtensa, ceva: ports to other DSPs, e.g. upstream's signal/micro/kernels/hexagon)
_SKIP_DIRS = {"examples", "testing", "tools", "python", "experimental", "benchmarks",
              "peripherals", "integration_tests", "test", "tests", "docs", "hexagon",
              "xtensa", "ceva"}
_MICRO_DIRS = {"arena_allocator", "memory_planner", "tflite_bridge", "kernels"}
HOST_ARENA_FACTOR = 2  # 8-byte pointers: the 64-bit host needs more bookkeeping


@dataclass
class CheckResult:
    platform: str
    passed: bool
    arena_bytes: int
    arena_used_bytes: int | None
    output: str
    compile_only: bool = False  # a compile of the board main, nothing run
    # Cortex-M4 instructions per inference, counted by QEMU -icount (in thousands)
    instructions_per_inference: int | None = None
    # per op of one inference (TFLM's MicroProfiler under -icount): index, op, instructions
    op_instructions: list[dict] | None = None

    def to_dict(self) -> dict:
        return {"platform": self.platform, "passed": self.passed, "arena_bytes": self.arena_bytes,
                "arena_used_bytes": self.arena_used_bytes, "output": self.output,
                "compile_only": self.compile_only,
                "instructions_per_inference": self.instructions_per_inference,
                "op_instructions": self.op_instructions}


def qemu_command(elf: str | Path) -> list[str]:
    """Run a check ELF on QEMU's Cortex-M4F board, with guest time counting instructions:
    ``-icount shift=0`` advances virtual time 1 ns per instruction, which the check main's
    timer reads (1 "us" = 1,000 instructions); output and exit code over semihosting."""
    return ["qemu-system-arm", "-M", "mps2-an386", "-icount", "shift=0", "-nographic",
            "-monitor", "none", "-serial", "none", "-semihosting-config",
            "enable=on,target=native", "-kernel", str(elf)]


TICK_INSTRUCTIONS = 40  # the check main's profiler clock: 25 MHz ticks of 1 ns instructions


def op_instructions(output: str) -> list[dict] | None:
    """Instructions per op of one inference from a QEMU check's output: TFLM's
    MicroProfiler CSV (``"Event","Tag","Ticks"`` then ``index,OP,ticks``), whose ticks are
    25 MHz timer ticks of guest time, 40 instructions each under ``-icount shift=0``
    (resolution 40 instructions)."""
    lines = output.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == '"Event","Tag","Ticks"'), None)
    if start is None:
        return None
    ops = []
    for line in lines[start + 1:]:
        m = re.fullmatch(r"\s*(\d+),([^,]+),(-?\d+)\s*", line)
        if m is None:
            break
        ops.append({"index": int(m.group(1)), "op": m.group(2),
                    "instructions": int(m.group(3)) * TICK_INSTRUCTIONS})
    return ops or None


def instructions_per_inference(output: str) -> int | None:
    """Instructions per inference from a QEMU check's self-test line (its "us" are
    thousands of instructions under ``-icount shift=0``; resolution 1,000)."""
    m = re.search(r"self-test (?:PASS|FAIL) \(.*\), (\d+) us per inference", output)
    return int(m.group(1)) * 1000 if m else None


@dataclass
class Tree:
    root: Path  # the directory holding tensorflow/
    sources: list[Path]
    includes: list[Path]
    defines: list[str]
    kernels: str  # description for the report
    debug_log: str | None  # DebugLog definition to add, when the tree has none
    kernel_choice: str = "reference"  # "reference", "cmsis-nn", "esp-nn-ansi" (cache key)
    other_roots: tuple[Path, ...] = ()  # sources built with the tree from outside it (ESP-NN)
    # the optimisation level of the board build (the target's, targets.yaml): the
    # Cortex-M4 library and harness are compiled with it
    optimize: str = HOST_OPTIMIZE

    def for_target(self, target) -> "Tree":
        """This tree as ``target``'s board build compiles it (its optimisation level)."""
        return dataclasses.replace(self, optimize=target.optimize)

    @property
    def cortex_m4_build(self) -> str:
        """Which build the Cortex-M4 figures count, in words."""
        name = self.root.parent.name if self.root.name == "src" else self.root.name
        return f"{name} ({self.kernels}), built for the Cortex-M4 at {self.optimize}"


def check_project(project: str | Path, tflm_dir: "str | Path | Tree", *,
                  qemu: bool | None = None, cache_dir: Path | None = None,
                  host: bool = True) -> list[CheckResult]:
    """Build and run the project's self-test on the host and (optionally) QEMU, against
    the TFLM tree at ``tflm_dir`` (or one :func:`find_tree` already located); ``host``
    False skips the board-main compile and the host run (benchmarks that only count
    Cortex-M4 instructions)."""
    project = Path(project)
    meta = read_project(project)
    tree = tflm_dir if isinstance(tflm_dir, Tree) else find_tree(Path(tflm_dir))
    tree = tree.for_target(get_target(meta.target))  # the board's optimisation level
    code_dir = _code_dir(project, meta.name)
    cache_dir = cache_dir or cache_root()
    arena = meta.arena_bytes
    results = [compile_board_main(project, meta.target, code_dir)] if host else []
    with tempfile.TemporaryDirectory(prefix="tflmp-check-") as tmp:
        tmp = Path(tmp)
        main = tmp / "check_main.cc"
        main.write_text(render("check/check_main.cc.j2", name=meta.name))
        if host:
            results.append(_build_and_run(HOST_TOOLCHAIN, tree, code_dir, meta.name, main, tmp,
                                          arena * HOST_ARENA_FACTOR + 4096, cache_dir))
        want_qemu = qemu if qemu is not None else bool(
            shutil.which("arm-none-eabi-g++") and shutil.which("qemu-system-arm"))
        if want_qemu:
            require_cortex_m4_tools()
            results.append(_build_and_run(CORTEX_M4_TOOLCHAIN, tree, code_dir, meta.name, main,
                                          tmp, arena, cache_dir))
    return results


# How each template's main is compiled: the defines and forced includes of the board
# builds, one compile per variant (a PlatformIO project builds for two boards).
_MAIN_VARIANTS = {
    "arduino": [["-DARDUINO", "-DARDUINO_ARCH_MBED", "-include", "Arduino.h"]],
    "esp32": [["-DARDUINO", "-DARDUINO_ARCH_ESP32", "-include", "Arduino.h"]],
    "esp-idf": [[]],
    "platformio": [["-DARDUINO", "-DARDUINO_ARCH_MBED"], ["-DARDUINO", "-DARDUINO_ARCH_ESP32"]],
}


# the USER HOOK's switches for a board's own sensor (firmware/common/user_hook_*.j2)
# (macro, value, the board variants that have that sensor; empty: all)
_SENSOR_SWITCHES = [("TFLMP_USE_IMU", 1, {"-DARDUINO_ARCH_MBED"}),
                    ("TFLMP_USE_IMU", 2, {"-DARDUINO_ARCH_MBED"}), ("TFLMP_USE_MIC", 1, set())]


def main_file(project: Path, template: str, code_dir: Path) -> Path:
    """The board project's own main: the sketch, main.cc or main.cpp."""
    if template in ("arduino", "esp32"):
        sketches = sorted(project.glob("*.ino"))
        if len(sketches) != 1:
            raise TflmpError(f"{project} should hold one .ino sketch, it holds {len(sketches)}")
        return sketches[0]
    return code_dir / ("main.cc" if template == "esp-idf" else "main.cpp")


def compile_board_main(project: Path, target_name: str, code_dir: Path) -> CheckResult:
    """Compile the project's main (the file the user edits) on this host against
    declarations of the board's platform API (``firmware/check/platform``): it is part
    of the check, so a project whose main does not build cannot pass."""
    template = get_target(target_name).template
    main = main_file(project, template, code_dir)
    platform = firmware_file("check/platform")
    failures = []
    variants = _MAIN_VARIANTS[template]
    text = main.read_text()
    # the USER HOOK's board-sensor code too (firmware/check/platform declares the libraries)
    variants = variants + [v + [f"-D{macro}={value}"] for v in variants
                           for macro, value, arches in _SENSOR_SWITCHES
                           if f"#ifndef {macro}\n" in text and (not arches or set(v) & arches)]
    for variant in variants:
        cmd = ["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", "-x", "c++",
               f"-I{platform}", f"-I{code_dir}", *variant, str(main)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            defines = " ".join(v for v in variant if v.startswith("-D"))
            failures.append((f"{defines}: " if defines else "")
                            + next((ln for ln in r.stderr.splitlines() if "error" in ln),
                                   r.stderr.strip()[-300:]))
    where = main.relative_to(project)
    output = "\n".join(failures) if failures else (
        f"{where} compiles ({len(variants)} board and sensor variant(s))")
    return CheckResult(f"host compile of {where}", not failures, 0, None, output,
                       compile_only=True)


def find_tree(path: Path, kernels: str | None = None) -> Tree:
    """Locate the sources of a TFLM tree (upstream, esp-tflite-micro, Arduino library);
    ``kernels`` "target" or "reference" picks its kernels (see kernel_choice.py), None
    builds what ``firmware --check`` builds (CMSIS-NN in an Arduino library, else reference)."""
    path = Path(path).resolve()  # one tree, however it is typed
    candidates = [path, path / "src"]
    root = next((c for c in candidates
                 if (c / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file()), None)
    if root is None:
        raise TflmpError(f"{path} holds no TFLM sources (tensorflow/lite/micro/"
                         "micro_interpreter.h); pass the TFLM tree or the src/ of an Arduino "
                         "TFLM library")
    arduino = (root.parent / "library.properties").is_file() or (root / "library.properties").is_file()
    micro = root / "tensorflow" / "lite" / "micro"
    third = _third_party(path, root, micro)
    # the reference kernels, or the optimized ones the board build links (kernel_choice.py)
    chosen = select_kernels(root, third, [p for p in _walk(root / "tensorflow")
                                          if _portable(p, micro)], kernels,
                            arduino=arduino, walk=_walk)
    sources = list(chosen.sources)
    for sub in ("signal/micro/kernels", "signal/src"):  # the Signal library's audio ops
        sources += _walk(root / sub)
    includes = [root]
    for sub in ("flatbuffers/include", "gemmlowp", "ruy", "kissfft", "cmsis_nn",
                "cmsis_nn/Include", "cmsis/CMSIS/Core/Include", "cmsis"):
        if (third / sub).is_dir():
            includes.append(third / sub)
    if (third / "kissfft").is_dir():
        sources += [p for p in _walk(third / "kissfft") if p.name in ("kiss_fft.c", "kiss_fftr.c")]
    header = (micro / "debug_log.h").read_text(errors="replace")
    new_signature = "va_list" in header
    debug_log_defined = any(p.stem == "debug_log" and re.search(
        r"void\s+DebugLog\s*\([^)]*\)\s*\{", p.read_text(errors="replace")) for p in sources)
    debug_log = None
    if not debug_log_defined:
        debug_log = ("#include <stdarg.h>\n#include <stdio.h>\nextern \"C\" void "
                     "DebugLog(const char* format, va_list args) { vfprintf(stderr, format, "
                     "args); }\n" if new_signature else
                     "#include <stdio.h>\nextern \"C\" void DebugLog(const char* s) "
                     "{ fputs(s, stderr); }\n")
    # An Arduino IDE build cannot pass defines to a library, so TF_LITE_STATIC_MEMORY is
    # unset there (full-size TfLiteTensor); ESP-IDF and arduino-esp32 define it.
    defines = ["-DARDUINO"] if arduino else ["-DTF_LITE_STATIC_MEMORY"]
    return Tree(root, sorted(set(sources)), includes + chosen.includes,
                defines + chosen.defines, chosen.note, debug_log, chosen.choice, chosen.roots)


def _third_party(path: Path, root: Path, micro: Path) -> Path:
    """The folder holding flatbuffers and the other libraries TFLM includes: a
    self-contained tree's ``third_party/``, or what upstream's Makefile downloaded."""
    for third in (root / "third_party", micro / "tools" / "make" / "downloads"):
        if (third / "flatbuffers" / "include").is_dir():
            return third
    if (micro / "tools" / "make" / "Makefile").is_file():  # an upstream tflite-micro clone
        raise TflmpError(
            f"{path} is a tflite-micro clone without its third-party libraries; in it run "
            "'make -f tensorflow/lite/micro/tools/make/Makefile third_party_downloads', or "
            "export a self-contained tree with 'python3 tensorflow/lite/micro/tools/"
            "project_generation/create_tflm_tree.py OUT' and pass OUT (either fetches "
            "flatbuffers and the other libraries once, from the internet)")
    raise TflmpError(f"{path} lacks third_party/flatbuffers/include; pass a self-contained "
                     "TFLM tree (esp-tflite-micro, an Arduino TFLM library's src/, or one "
                     "made by tflite-micro's create_tflm_tree.py)")


def _walk(top: Path) -> list[Path]:
    out = []
    if not top.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if p.suffix in (".cc", ".cpp", ".c") and not p.stem.endswith(("_test", "_benchmark")) \
                    and p.stem not in _SKIP_STEMS:
                out.append(p)
    return out


def _portable(p: Path, micro: Path) -> bool:
    """Core TFLM sources: micro/ itself, its allocator, planner and bridge folders and
    the reference kernels; no board ports (micro/esp, cortex_m_generic, ...)."""
    try:
        rel = p.relative_to(micro)
    except ValueError:
        return True  # tensorflow/lite/{core,kernels,schema,...} and tensorflow/compiler
    return len(rel.parts) == 1 or (len(rel.parts) == 2 and rel.parts[0] in _MICRO_DIRS)


@dataclass
class _Toolchain:
    name: str
    cc: str
    cxx: str
    ar: str
    arch: list[str]

    def version(self) -> str:
        out = subprocess.run([self.cxx, "--version"], capture_output=True, text=True)
        return out.stdout.splitlines()[0] if out.stdout else self.cxx


HOST_TOOLCHAIN = _Toolchain("host", "gcc", "g++", "ar", [])
CORTEX_M4_TOOLCHAIN = _Toolchain("cortex-m4", "arm-none-eabi-gcc", "arm-none-eabi-g++",
                                 "arm-none-eabi-ar", CM4_FLAGS)


def require_cortex_m4_tools() -> None:
    """The cross-compiler and QEMU a Cortex-M4 run needs, or a one-line error."""
    for tool in ("arm-none-eabi-g++", "qemu-system-arm"):
        if shutil.which(tool) is None:
            raise TflmpError(f"{tool} not found: apt-get install gcc-arm-none-eabi "
                             "libstdc++-arm-none-eabi-newlib qemu-system-arm")


def qemu_link_flags() -> list[str]:
    """Link flags of a program for QEMU's mps2-an386: its memory map, newlib with
    semihosting for files and output; the start-up code is :func:`cortex_m4_startup`."""
    return ["--specs=rdimon.specs", "-nostartfiles", "-T",
            str(firmware_file("check/mps2_an386.ld")), "-Wl,--gc-sections"]


def cortex_m4_startup(work: Path) -> Path:
    """The check programs' Cortex-M4 start-up code, compiled into ``work``."""
    startup = work / "startup.o"
    run_step([CORTEX_M4_TOOLCHAIN.cc, *CM4_FLAGS, "-O2", "-c",
              str(firmware_file("check/cm4_startup.c")), "-o", str(startup)],
             "compiling the Cortex-M4 start-up code")
    return startup


def cache_root() -> Path:
    """Where built TFLM libraries are kept: ``$TFLMP_CACHE`` or ``~/.cache/tflmp``."""
    return Path(os.environ.get("TFLMP_CACHE", Path.home() / ".cache" / "tflmp"))


def compile_flags(tool: _Toolchain, tree: Tree, c: bool) -> list[str]:
    """Flags of one compile: cross builds at the tree's (the target's) optimisation
    level, host builds at ``HOST_OPTIMIZE``."""
    optimize = tree.optimize if tool.arch else HOST_OPTIMIZE
    return (tool.arch + [optimize] + BUILD_FLAGS + tree.defines
            + (C_FLAGS if c else CXX_FLAGS) + [f"-I{p}" for p in tree.includes])


def tree_digest(tree: Tree) -> str:
    """What the library is built from: every source and header of the tree, by its path
    inside the tree and its content (not where the tree lies or how it was typed)."""
    files = set(tree.sources)
    for top in tree.includes:  # the root, and third-party folders (maybe under tools/)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
            files.update(Path(dirpath) / f for f in filenames
                         if f.endswith((".h", ".hpp", ".inc")))
    digest = hashlib.sha256()
    for p in sorted(files):
        digest.update(_inside(p, tree).encode() + b"\0")
        digest.update(hashlib.sha256(p.read_bytes()).digest())
    return digest.hexdigest()


def _inside(p: Path, tree: Tree) -> str:
    """A file's name within the tree or the source folder beside it (ESP-NN), else its
    own name (tflmp's host stand-in headers): never where the tree lies."""
    for top, prefix in ((tree.root, ""), *((r, f"<{r.name}>/") for r in tree.other_roots)):
        if p.is_relative_to(top):
            return prefix + str(p.relative_to(top))
    return f"<{p.parent.name}>/{p.name}"


def library_key(tool: _Toolchain, tree: Tree, compiler: str, digest: str) -> str:
    """The cache folder name of a library: toolchain, flags (optimisation level included,
    never where the tree lies), kernel choice, compiler version and tree content."""
    flags = [f"-I{_inside(Path(f[2:]), tree)}" if f.startswith("-I") else f
             for f in compile_flags(tool, tree, False)]
    key = hashlib.sha256(" ".join(flags + [compiler, digest,
                                           f"kernels={tree.kernel_choice}"]).encode())
    return f"{tool.name}-{key.hexdigest()[:16]}"


def library_dir(tool: _Toolchain, tree: Tree, cache_dir: Path) -> Path:
    """Where the tree's library for ``tool`` is cached (:func:`library_key`)."""
    return cache_dir / "tflm" / library_key(tool, tree, tool.version(), tree_digest(tree))


def build_library(tool: _Toolchain, tree: Tree, cache_dir: Path) -> Path:
    """Compile the tree into a static library once per tree content, kernel choice,
    compiler and flags."""
    out = library_dir(tool, tree, cache_dir)
    lib = out / "libtflm.a"
    if lib.is_file():
        return lib
    obj = out / "obj"
    obj.mkdir(parents=True, exist_ok=True)
    log.info("building TFLM for %s (%s): %d sources into %s, once per tree, compiler and "
             "flags (minutes on 2 cores)", tool.name, tree.kernels, len(tree.sources), lib)
    progress = Progress(len(tree.sources), f"building TFLM for {tool.name} ({tree.kernels})",
                        heartbeat=60)
    done = 0

    def compile_one(src: Path):
        st = src.stat()
        tag = hashlib.sha1(f"{src}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
        o = obj / f"{tag}_{src.stem}.o"
        if o.is_file():  # compiled by an earlier, interrupted build
            return src, o, None
        c = src.suffix == ".c"
        tmp = f"{o}.{os.getpid()}.tmp"  # another build of the same tree may run at once
        cmd = [tool.cc if c else tool.cxx, *compile_flags(tool, tree, c), "-c", str(src), "-o", tmp]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            os.replace(tmp, o)
        return src, o, r

    failures, objects = [], []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for src, o, r in pool.map(compile_one, tree.sources):
            objects.append(str(o))
            done += 1
            progress.update(done)
            if r is not None and r.returncode != 0:
                failures.append((src, r.stderr))
    progress.close()
    if failures:
        src, err = failures[0]
        first = next((ln for ln in err.splitlines() if "error" in ln), err.strip()[:200])
        raise TflmpError(f"{len(failures)} TFLM source(s) failed to compile for {tool.name}, "
                         f"first {src.relative_to(tree.root)}: {first}")
    tmp_lib = out / f"libtflm.{os.getpid()}.tmp.a"  # concurrent builds never share it
    tmp_lib.unlink(missing_ok=True)
    run_step([tool.ar, "rcs", str(tmp_lib), *objects], f"archiving TFLM for {tool.name}")
    os.replace(tmp_lib, lib)
    return lib


def _code_dir(project: Path, name: str) -> Path:
    for d in (project, project / "main", project / "src"):
        if (d / f"{name}_runner.cc").is_file():
            return d
    raise TflmpError(f"{project} has no {name}_runner.cc; regenerate it with 'tflmp firmware'")


def _build_and_run(tool: _Toolchain, tree: Tree, code_dir: Path, name: str, main: Path,
                   tmp: Path, arena_bytes: int, cache_dir: Path) -> CheckResult:
    lib = build_library(tool, tree, cache_dir)
    work = tmp / tool.name
    work.mkdir()
    sources = [main, code_dir / f"{name}_runner.cc", code_dir / f"{name}_model_data.cc"]
    sources += [code_dir / f for f in (f"{name}_audio_frontend.c", "tflmp_audio_frontend.c")
                if (code_dir / f).is_file()]  # an audio project's feature front end (C)
    if tree.debug_log:
        (work / "debug_log_check.cc").write_text(tree.debug_log)
        sources.append(work / "debug_log_check.cc")
    objects = []
    for src in sources:
        o = work / (src.stem + ".o")
        c = src.suffix == ".c"
        profile = ["-DTFLMP_PROFILE"] if tool.arch else []  # per-op ticks on the Cortex-M4
        cmd = [tool.cc if c else tool.cxx, *compile_flags(tool, tree, c), f"-I{code_dir}",
               f"-DTFLMP_CHECK_ARENA_BYTES={arena_bytes}", *profile, "-c", str(src), "-o",
               str(o)]
        run_step(cmd, f"compiling {src.name} for {tool.name}")
        objects.append(str(o))
    exe = work / ("check.elf" if tool.arch else "check")
    if tool.arch:
        run_step([tool.cxx, *tool.arch, *qemu_link_flags(), str(cortex_m4_startup(work)),
                  *objects, str(lib), "-lm", "-o", str(exe)], "linking for Cortex-M4")
        run_cmd = qemu_command(exe)
        platform = f"qemu-cortex-m4 (32-bit, {tree.optimize})"
    else:
        run_step([tool.cxx, *objects, str(lib), "-Wl,--gc-sections", "-lm", "-o", str(exe)],
             "linking for the host")
        run_cmd = [str(exe)]
        platform = "host (64-bit)"
    try:
        r = subprocess.run(run_cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return CheckResult(platform, False, arena_bytes, None, "timed out after 300 s")
    output = (r.stdout + r.stderr).strip()
    m = re.search(r"arena_used_bytes (\d+)\s*$", r.stdout, re.MULTILINE)
    used = int(m.group(1)) if m else None
    passed = r.returncode == 0 and "self-test PASS" in r.stdout
    return CheckResult(platform, passed, arena_bytes, used, output,
                       instructions_per_inference=(instructions_per_inference(r.stdout)
                                                   if tool.arch else None),
                       op_instructions=op_instructions(output) if tool.arch else None)


def run_step(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        err = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[-300:])
        raise TflmpError(f"{what} failed: {err}")
