"""A ready-to-build firmware project for one target, written from a :class:`ProjectSpec`.

Writes the model sources, the runner (shared by all targets) with the arena constant,
the golden vectors, the target's own project files from the templates in ``firmware/``,
a README with the build and flash commands, and ``tflmp_project.json``.  Everything
it states is handed in: ``tflmp firmware`` checks the model, re-converts it when the
target's TFLM needs that, sizes the arena and computes the golden vectors first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..artifacts import write_text
from ..errors import TflmpError
from ..firmware_files import render
from ..firmware_project import ProjectMeta, write_project
from ..mcu.arena import ArenaEstimate
from ..mcu.releases import OpRegistration
from ..mcu.targets import Target
from ..mcu.toolchains import build_commands, setup_commands, shell_lines
from ..preprocessing import Preprocessing
from ..tasks import Threshold
from ..tflite.model_info import ModelInfo
from . import write_model_sources
from .audio_frontend import write_audio_frontend
from .c_literals import camel_case
from .golden import GoldenVectors, write_golden_header
from .stream import stream_context
from .user_hook import user_hook


@dataclass(frozen=True)
class ProjectSpec:
    """Everything a project states, decided before anything is written."""

    target: Target
    ident: str  # the model's C identifier
    out_dir: Path
    model: bytes  # the flatbuffer the firmware runs (re-converted when the target needs)
    info: ModelInfo
    source: str  # file name the model came from
    preprocessing: Preprocessing | None
    output: str  # what the runner returns: "class", "anomaly_score" or "values" (Task)
    labels: list[str]  # class names in output order (empty unless output == "class")
    ops: list[OpRegistration]
    arena: ArenaEstimate
    vectors: GoldenVectors
    reconverted: str | None = None  # the re-converted model's TFLM accuracy, in words
    notes: list[str] = field(default_factory=list)
    # an anomaly detector's (output == "anomaly_score"), or a binary classifier's class-1
    # score threshold (output == "class")
    threshold: Threshold | None = None
    audio_frontend: dict | None = None  # Frontend.c_tables() of an audio model's features
    stream_hop: int | None = None  # a sensor-window run's stride: the streaming helpers' hop
    channel_names: list[str] | None = None  # a sensor CSV's channel columns, in input order


@dataclass
class Project:
    target: str
    name: str
    out_dir: Path
    files: list[Path]
    arena: ArenaEstimate
    model_sha256: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"target": self.target, "name": self.name, "out_dir": str(self.out_dir),
                "files": [str(f) for f in self.files], "arena": self.arena.to_dict(),
                "model_sha256": self.model_sha256, "notes": list(self.notes)}


def check_sketch_folder(target: Target, out_dir: Path) -> None:
    """Arduino needs the sketch folder named like its .ino."""
    if target.template in ("arduino", "esp32") and not re.fullmatch(
            r"[A-Za-z0-9_][A-Za-z0-9_.-]*", out_dir.name):
        raise TflmpError(f"Arduino needs the sketch folder named like its .ino: "
                         f"'{out_dir.name}' is not a valid sketch name; pick an --out folder "
                         "named with letters, digits, '_', '-' or '.'")


def write_firmware_project(spec: ProjectSpec) -> Project:
    """Write the project of ``spec`` into ``spec.out_dir``."""
    target, ident, out_dir, info = spec.target, spec.ident, spec.out_dir, spec.info
    layout = _layout(target, out_dir)
    code_dir = layout["code_dir"]
    files = write_model_sources(spec.model, info, ident, code_dir, ops=spec.ops,
                                op_sources=target.op_sources, arena=spec.arena,
                                preprocessing=spec.preprocessing, labels=spec.labels,
                                threshold=spec.threshold if spec.output != "class" else None,
                                positive_threshold=spec.threshold if spec.output == "class"
                                else None, source=spec.source, stream_hop=spec.stream_hop)
    files.append(write_golden_header(spec.vectors, info, ident, code_dir))
    if spec.audio_frontend is not None:
        files += write_audio_frontend(spec.audio_frontend, ident, code_dir)
    ctx = _context(spec, layout)
    for template, rel in (("common/runner.h.j2", f"{ident}_runner.h"),
                          ("common/runner.cc.j2", f"{ident}_runner.cc")):
        files.append(write_text(code_dir / rel, render(template, **ctx)))
    for template, path in layout["files"]:
        files.append(write_text(path, render(template, **ctx)))
    ctx["files"] = sorted(str(f.relative_to(out_dir)) for f in files) + ["README.md"]
    files.append(write_text(out_dir / "README.md", render("common/README.md.j2", **ctx)))
    write_project(out_dir, ProjectMeta(
        __version__, target.name, ident, layout.get("sketch"), info.sha256,
        {**spec.arena.to_dict(), "tree": target.releases_title},
        {"count": len(spec.vectors.inputs), "source": spec.vectors.source}, spec.notes))
    return Project(target.name, ident, out_dir, files, spec.arena, info.sha256, spec.notes)


def _layout(target: Target, out_dir: Path) -> dict:
    """Where each file of the target's project goes."""
    if target.template in ("arduino", "esp32"):
        check_sketch_folder(target, out_dir)
        sketch = out_dir.name
        return {"code_dir": out_dir, "sketch": sketch, "main_file": f"{sketch}.ino",
                "files": [(f"{target.template}/sketch.ino.j2", out_dir / f"{sketch}.ino")]}
    if target.template == "esp-idf":
        main = out_dir / "main"
        return {"code_dir": main, "main_file": "main/main.cc",
                "files": [("esp-idf/CMakeLists.txt.j2", out_dir / "CMakeLists.txt"),
                          ("esp-idf/sdkconfig.defaults.j2", out_dir / "sdkconfig.defaults"),
                          ("esp-idf/main_CMakeLists.txt.j2", main / "CMakeLists.txt"),
                          ("esp-idf/idf_component.yml.j2", main / "idf_component.yml"),
                          ("esp-idf/main.cc.j2", main / "main.cc")]}
    if target.template == "platformio":
        return {"code_dir": out_dir / "src", "main_file": "src/main.cpp",
                "files": [("platformio/platformio.ini.j2", out_dir / "platformio.ini"),
                          ("platformio/main.cpp.j2", out_dir / "src" / "main.cpp")]}
    raise TflmpError(f"target {target.name} has an unknown template '{target.template}'")


def _context(spec: ProjectSpec, layout: dict) -> dict:
    """The templates' names: one value each, all derived from ``spec``."""
    target, ident, info, arena, pre = spec.target, spec.ident, spec.info, spec.arena, \
        spec.preprocessing
    if pre is None:
        raw = "raw values as the model's training data had them"
    elif pre.per_channel:
        raw = f"{pre.dataset}: {pre.raw_dtype} values, channels innermost"
    else:
        raw = (f"{pre.dataset}: {pre.raw_dtype} values; the model input is "
               f"raw * {pre.scale:.6g} + {pre.offset:g}")
    sources = sorted((f"{ident}_model_data.cc", f"{ident}_runner.cc", "main.cc"))
    if spec.audio_frontend is not None:
        sources = sorted(sources + [f"{ident}_audio_frontend.c", "tflmp_audio_frontend.c"])
    return {
        "name": ident, "camel": camel_case(ident), "macro": ident.upper(),
        "guard": f"{ident.upper()}_RUNNER_H_", "tool_version": __version__,
        "target": target.name, "target_title": target.title,
        "tflm_library": target.tflm_library, "platform_include": target.platform_include,
        "source": spec.source, "sha256": info.sha256,
        "sketch": layout.get("sketch", ident), "main_file": layout["main_file"],
        "arena": {"bytes": arena.bytes, "used": arena.used, "planned": arena.planned,
                  "bookkeeping": arena.bookkeeping, "binding": arena.binding,
                  "tree": target.releases_title,
                  "basis": f"a 32-bit MCU with {target.tflm_library}",
                  "unmeasured": list(arena.unmeasured_ops)},
        "arena_placement": ("Allocated in internal RAM, or PSRAM when internal RAM is short."
                            if target.arena == "heap" else
                            "A static 16-byte-aligned array."),
        "golden_count": len(spec.vectors.inputs), "golden_source": spec.vectors.source,
        "output": spec.output, "output_elements": info.outputs[0].elements,
        "audio": spec.audio_frontend is not None,
        "raw_audio": spec.vectors.raw is not None,
        "raw_sample": spec.vectors.raw_sample is not None,
        "input_elements": info.inputs[0].elements, "raw_description": raw,
        "hook": user_hook(pre, info.inputs[0].shape, spec.channel_names,
                          spec.audio_frontend is not None),
        "ops": [r.name for r in spec.ops],
        "reconverted": spec.reconverted,
        "threshold": None if spec.threshold is None else {
            "value": f"{spec.threshold.value:.6g}", "method": spec.threshold.method},
        "component_version": target.build.get("component_version"),
        "sources": sources, "project_dir": ".",
        "setup_commands": shell_lines(setup_commands(target)),
        "build_commands": shell_lines(build_commands(target, Path("."), "PORT")),
        **stream_context(info, ident, pre, spec.stream_hop),
    }
