"""Which kernels a TFLM tree is built with for the host: the reference ones, or the
optimized set that tree's board build links, compiled from its portable C.

* CMSIS-NN (an Arduino TFLM library such as Chirale's, or any tree shipping
  ``kernels/cmsis_nn`` and ``third_party/cmsis_nn``): TFLM's ``cmsis_nn`` wrappers replace
  the reference kernels of the same name, and the CMSIS-NN library compiles with its C
  fallbacks: it selects its DSP and MVE code from ``__ARM_FEATURE_DSP`` /
  ``__ARM_FEATURE_MVE`` (``arm_nn_math_types.h`` defines ``ARM_MATH_DSP`` / ``ARM_MATH_MVEI``
  from them), which no host compiler defines.  Requantization (``arm_nn_requantize``) is one C
  function on every path; the DSP path only packs int8 pairs into SMLAD multiply-accumulates,
  whose int32 sums are the same.
* ESP-NN (esp-tflite-micro): its ``kernels/esp_nn`` wrappers replace the reference kernels
  (as its CMakeLists.txt does) and ESP-NN's ANSI C sources (``*_ansi.c``, selected by
  ``CONFIG_NN_ANSI_C``, ESP-NN's "ANSI C" Kconfig choice) are compiled with ``-DESP_NN``.
  ESP-NN is a separate IDF component (esp-tflite-micro 1.4 asks for ``espressif/esp-nn
  >=1.1.1``); it is looked for beside the tree, as ``esp-nn`` or, in an IDF project's
  ``managed_components/``, ``espressif__esp-nn``.  ``optimized`` compiles ESP-NN's default
  ``NN_OPTIMIZED`` choice instead, which without an ESP32-S3/P4 target (assembly) is its
  generic C (``*_opt.c`` for conv, depthwise conv and softmax): what ESP32 and ESP32-C3
  builds link by default.

Neither board build sets ``TFLITE_SINGLE_ROUNDING`` / ``CMSIS_NN_USE_SINGLE_ROUNDING``
(an Arduino IDE build cannot pass defines; esp-tflite-micro's CMakeLists.txt does not), so
every build here rounds as TFLite's default, twice (doubling high multiply, then a rounding
shift), like the pip interpreter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TflmpError
from ..firmware_files import path as firmware_file

KERNEL_CHOICES = ("target", "reference", "optimized")
ESP_NN_DIRS = ("esp-nn", "espressif__esp-nn")
ROUNDING = "double (TFLite default; no single-rounding define)"


@dataclass(frozen=True)
class KernelSet:
    """The kernels chosen for one tree and what compiling them adds."""

    choice: str  # "reference", "cmsis-nn" or "esp-nn-ansi": part of the build's cache key
    note: str  # for reports
    sources: list[Path]  # the tree's sources with the choice applied
    includes: list[Path] = field(default_factory=list)
    defines: list[str] = field(default_factory=list)
    roots: tuple[Path, ...] = ()  # source folders outside the tree (ESP-NN)


def select_kernels(root: Path, third: Path, sources: list[Path], kernels: str | None, *,
                   arduino: bool, walk) -> KernelSet:
    """Apply ``kernels`` to a tree's portable ``sources``: ``"target"`` the optimized set its
    board build links, in its most portable C (reference when it has none),
    ``"optimized"`` the same with ESP-NN's generic optimized C in place of its ANSI C
    (CMSIS-NN has only one C path on a host), ``"reference"`` the reference kernels,
    None what ``firmware --check`` has always built (CMSIS-NN in an Arduino library, else
    reference).  ``walk`` lists a folder's compilable sources."""
    if kernels is not None and kernels not in KERNEL_CHOICES:
        raise TflmpError(f"--kernels must be {', '.join(KERNEL_CHOICES)}, got '{kernels}'")
    kernel_dir = root / "tensorflow" / "lite" / "micro" / "kernels"
    # (cmsis-nn/ and CMSIS under tools/make/downloads/: Arduino libraries of TFLM <= 2.4)
    cmsis_wrappers = next((d for d in (kernel_dir / "cmsis_nn", kernel_dir / "cmsis-nn")
                           if d.is_dir()), kernel_dir / "cmsis_nn")
    esp_wrappers = kernel_dir / "esp_nn"
    old_cmsis = root / "tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/NN"
    if kernels == "reference":
        missing = _missing_reference(kernel_dir, sources, cmsis_wrappers)
        if missing:
            raise TflmpError(
                f"{root} ships no reference kernels for {', '.join(missing)} (only its "
                "CMSIS-NN ones); use --kernels target, or a TFLM tree with reference kernels")
        return KernelSet("reference", "reference kernels", sources)
    if cmsis_wrappers.is_dir() and (arduino or kernels in ("target", "optimized")):
        library = [*(walk(third / "cmsis_nn") if (third / "cmsis_nn").is_dir() else []),
                   *(walk(old_cmsis) if old_cmsis.is_dir() else [])]
        if not library:
            raise TflmpError(f"{root} has CMSIS-NN kernel wrappers but no CMSIS-NN library "
                             f"in {third / 'cmsis_nn'}; use --kernels reference")
        return KernelSet("cmsis-nn", "CMSIS-NN kernels, as the Arduino library builds them",
                         _replace(sources, kernel_dir, walk(cmsis_wrappers)) + library)
    if esp_wrappers.is_dir() and kernels in ("target", "optimized"):
        esp_nn = find_esp_nn(root)
        version = esp_nn_version(esp_nn)
        # ANSI C, or NN_OPTIMIZED without an ESP32-S3/P4 target: ESP-NN's generic C
        # (_opt.c for conv, depthwise conv, softmax; ANSI C for the rest), which ESP32 and
        # ESP32-C3 builds link by default
        ansi = kernels == "target"
        suffixes = ("_ansi.c",) if ansi else ("_ansi.c", "_opt.c")
        library = [p for p in walk(esp_nn / "src") if p.name.endswith(suffixes)]
        return KernelSet(
            "esp-nn-ansi" if ansi else "esp-nn-opt",
            f"ESP-NN {version} {'ANSI C' if ansi else 'generic optimized C (NN_OPTIMIZED)'} "
            "kernels, as esp-tflite-micro links them",
            _replace(sources, kernel_dir, walk(esp_wrappers)) + library,
            includes=[esp_nn / "include", esp_nn / "src" / "common",
                      firmware_file("check/esp_host")],
            defines=["-DESP_NN=1", "-DCONFIG_NN_ANSI_C=1" if ansi else "-DCONFIG_NN_OPTIMIZED=1"],
            roots=(esp_nn,))
    return KernelSet("reference", "reference kernels", sources)


def _replace(sources: list[Path], kernel_dir: Path, wrappers: list[Path]) -> list[Path]:
    """The wrappers in place of the reference kernels of the same name."""
    replaced = {p.stem for p in wrappers}
    return [p for p in sources if not (p.parent == kernel_dir and p.stem in replaced)] + wrappers


def _missing_reference(kernel_dir: Path, sources: list[Path], wrappers: Path) -> list[str]:
    """Kernels the tree has only as CMSIS-NN wrappers (Arduino libraries drop the rest)."""
    if not wrappers.is_dir():
        return []
    have = {p.stem for p in sources if p.parent == kernel_dir}
    return sorted(p.stem for p in wrappers.iterdir()
                  if p.suffix in (".cc", ".cpp") and p.stem not in have)


def find_esp_nn(root: Path) -> Path:
    """ESP-NN beside an esp-tflite-micro tree (a checkout or an IDF managed component)."""
    for base in (root.parent, root):
        for name in ESP_NN_DIRS:
            candidate = base / name
            if (candidate / "include" / "esp_nn.h").is_file():
                return candidate.resolve()
    raise TflmpError(f"{root} builds its kernels with ESP-NN, which is not beside it: put an "
                     f"esp-nn checkout (github.com/espressif/esp-nn) at {root.parent / 'esp-nn'} "
                     "(or pass the tree inside an IDF project's managed_components/), or use "
                     "--kernels reference")


def esp_nn_version(esp_nn: Path) -> str:
    """ESP-NN's version from its idf_component.yml ("unknown" without one)."""
    manifest = esp_nn / "idf_component.yml"
    text = manifest.read_text(errors="replace") if manifest.is_file() else ""
    m = re.search(r'^version:\s*"?([^"\s]+)"?', text, re.MULTILINE)
    return m.group(1) if m else "unknown"
