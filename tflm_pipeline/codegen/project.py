"""``tflmp firmware``: a ready-to-build project for one target from a run or a model.

Checks first, writes second: the model must be full int8, every op must exist in the
TFLM the target links, and Dense layers must be quantized the way that TFLM computes
correctly (a run is re-converted when needed).  Then the model sources, the runner with
the exact arena constant, the golden vectors and the target's project files are written
from the templates in ``firmware/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__, arena, runs
from ..artifacts import write_json, write_text
from ..convert import per_channel_dense_layers
from ..errors import TflmpError
from ..model_info import ModelInfo, read_model, read_model_bytes
from ..targets import Target, get_target
from . import write_model_sources
from .c_array import c_identifier
from .golden import golden_vectors, write_golden_header
from .op_resolver import camel_case, registrations
from .templates import render

PROJECT_FILE = "tflmp_project.json"


@dataclass
class Project:
    target: str
    name: str
    out_dir: Path
    files: list[Path]
    arena: arena.ArenaEstimate
    model_sha256: str
    notes: list[str] = field(default_factory=list)


def generate(source: str | Path, target_name: str, out_dir: str | Path | None = None, *,
             name: str | None = None) -> Project:
    """Write the ``target_name`` project for ``source`` (run folder or ``.tflite``)."""
    target = get_target(target_name)
    src = runs.resolve(source)
    model = read_model_bytes(src.model_path)
    info = read_model(model)
    ident = c_identifier(name or (src.config.model if src.config else src.model_path.stem))
    if out_dir is None:
        base = src.run_dir or Path("build")
        out_dir = base / "firmware" / target.name
    out_dir = Path(out_dir)
    notes: list[str] = []

    if not info.is_full_int8:
        raise TflmpError(f"{src.model_path.name} has {info.inputs[0].type} input / "
                         f"{info.outputs[0].type} output; firmware needs a full-int8 model "
                         "(tflmp train writes one)")
    model, info, reconverted = _fit_dense_quantization(model, info, src, target)
    if reconverted:
        notes.append(reconverted)
    registrations(info, target.tree)  # every op exists in this TFLM, or a clear error
    estimate = arena.for_target(info, target.arena_profiles)
    if estimate.unmeasured_ops:
        notes.append("ops without measured 32-bit bookkeeping ("
                     + ", ".join(estimate.unmeasured_ops) + ") were sized generously; "
                     "check arena_used_bytes on the board or with --check")
    if not estimate.measured_profile:
        notes.append("the arena is derived from TFLM's Cortex-M sizes plus an allowance for "
                     "this board's architecture, which cannot be measured here; the board "
                     "prints arena_used_bytes at boot")
    dataset = src.dataset()
    vectors = golden_vectors(model, info, dataset)

    layout = _layout(target, out_dir, ident)
    code_dir = layout["code_dir"]
    files = write_model_sources(model, info, ident, code_dir, preprocessing=src.preprocessing,
                                tree=target.tree, source=src.model_path.name)
    files.append(write_golden_header(vectors, info, ident, code_dir))
    ctx = _context(target, ident, info, src, estimate, vectors, layout, reconverted)
    for template, rel in (("common/runner.h.j2", f"{ident}_runner.h"),
                          ("common/runner.cc.j2", f"{ident}_runner.cc")):
        files.append(write_text(code_dir / rel, render(template, **ctx)))
    for template, path in layout["files"]:
        files.append(write_text(path, render(template, **ctx)))
    ctx["files"] = sorted(str(f.relative_to(out_dir)) for f in files) + ["README.md"]
    files.append(write_text(out_dir / "README.md", render("common/README.md.j2", **ctx)))
    write_json(out_dir / PROJECT_FILE, {
        "tflmp_version": __version__, "target": target.name, "name": ident,
        "sketch": layout.get("sketch"), "model_sha256": info.sha256,
        "arena": {**estimate.to_dict(), "tree": ctx["arena"]["tree"]},
        "golden": {"count": len(vectors.inputs), "source": vectors.source}, "notes": notes})
    return Project(target.name, ident, out_dir, files, estimate, info.sha256, notes)


def _fit_dense_quantization(model: bytes, info: ModelInfo, src, target: Target):
    """Re-convert with per-tensor Dense weights for TFLM releases that compute
    per-channel Dense layers wrong; return (model, info, note or None)."""
    layers = per_channel_dense_layers(info)
    if target.per_channel_dense or not layers:
        return model, info, None
    report = src.report()
    if src.run_dir is None or report is None:
        raise TflmpError(
            f"{src.model_path.name} has per-channel Dense (FULLY_CONNECTED) weights (ops "
            f"{', '.join(map(str, layers))}), which {target.tflm_library} computes wrong "
            "without an error; pass the run folder so tflmp can re-convert it with one scale "
            "per layer, or choose --target esp-idf")
    from ..convert import representative_samples, to_int8_tflite
    from ..qat import load_float, load_qat
    from ..tasks import CLASSIFICATION
    from ..verify import evaluate

    selected = report["metrics"]["selected"]
    run = src.run_dir
    keras_model = (load_qat(run / "float_best.h5", run / "qat_best_weights.h5")
                   if selected == "qat_int8_tflm" else load_float(run / "float_best.h5"))
    ds = src.dataset()
    x_train, _ = ds.inputs("train")
    calibration = representative_samples(x_train, src.config.calibration_samples,
                                         src.config.seed)
    model = to_int8_tflite(keras_model, calibration, per_channel_dense=False)
    info = read_model(model)
    x, y = ds.inputs("test")
    acc = evaluate(model, CLASSIFICATION, {"test": (x, y)}, ds.preprocessing.num_classes,
                   info=info, label="TFLM per-tensor Dense")["test"]["accuracy"]
    before = report["metrics"][selected]["accuracy"]
    return model, info, (f"{acc:.4f} on the test set (per-channel Dense: {before:.4f}); "
                         f"re-converted for {target.tflm_library}")


def _layout(target: Target, out_dir: Path, ident: str) -> dict:
    """Where each file of the target's project goes."""
    if target.template in ("arduino", "esp32"):
        sketch = out_dir.name
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", sketch):
            raise TflmpError(f"Arduino needs the sketch folder named like its .ino: '{sketch}' "
                             "is not a valid sketch name; pick an --out folder named with "
                             "letters, digits, '_', '-' or '.'")
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


def _context(target, ident, info, src, estimate, vectors, layout, reconverted) -> dict:
    pre = src.preprocessing
    t_in = info.inputs[0]
    titles = [arena.profile_title(p) for p in target.arena_profiles]
    tree = (f"the larger of {' and '.join(titles)}, as the release the board links varies"
            if len(titles) > 1 else titles[0])
    if pre is None:
        raw = "raw values as the model's training data had them"
    elif pre.per_channel:
        raw = f"{pre.dataset}: {pre.raw_dtype} values, channels innermost"
    else:
        raw = (f"{pre.dataset}: {pre.raw_dtype} values; the model input is "
               f"raw * {pre.scale:.6g} + {pre.offset:g}")
    sources = sorted(p for p in (f"{ident}_model_data.cc", f"{ident}_runner.cc", "main.cc"))
    return {
        "name": ident, "camel": camel_case(ident), "macro": ident.upper(),
        "guard": f"{ident.upper()}_RUNNER_H_", "tool_version": __version__,
        "target": target.name, "target_title": target.title,
        "tflm_library": target.tflm_library, "platform_include": target.platform_include,
        "source": src.model_path.name, "sha256": info.sha256,
        "sketch": layout.get("sketch", ident), "main_file": layout["main_file"],
        "arena": {"bytes": estimate.bytes, "used": estimate.used, "planned": estimate.planned,
                  "bookkeeping": estimate.bookkeeping, "binding": estimate.binding,
                  "tree": tree, "basis": f"a 32-bit MCU with {target.tflm_library}",
                  "unmeasured": list(estimate.unmeasured_ops)},
        "arena_placement": ("Allocated in internal RAM, or PSRAM when internal RAM is short."
                            if target.arena == "heap" else
                            "A static 16-byte-aligned array."),
        "golden_count": len(vectors.inputs), "golden_source": vectors.source,
        "golden_tolerance": target.golden_tolerance,
        "task": _task(src),
        "input_elements": int(np.prod(t_in.shape)), "raw_description": raw,
        "ops": [r.name for r in registrations(info, target.tree)],
        "reconverted": reconverted,
        "component_version": target.build.get("component_version"),
        "sources": sources, "project_dir": ".",
        "setup_commands": setup_commands(target), "build_commands": build_commands(target),
    }


def _task(src) -> str:
    from ..models import task_of

    return task_of(src.config.model) if src.config else "classification"


def setup_commands(target: Target) -> list[str]:
    """One-time installation of the toolchain and library the project builds with."""
    b = target.build
    if b["tool"] == "arduino-cli":
        urls = f" --additional-urls {b['core_index_url']}" if b.get("core_index_url") else ""
        cmds = [f"arduino-cli core update-index{urls}", f"arduino-cli core install {b['core']}{urls}"]
        cmds += [f'arduino-cli lib install "{lib}"' for lib in b.get("libraries", [])]
        return cmds
    if b["tool"] == "idf.py":
        return [f"idf.py set-target {b['chip']}"]
    return []


def build_commands(target: Target, port: str = "PORT", project: str = ".") -> list[str]:
    """Build and upload, as shell lines (see :mod:`tflm_pipeline.flash`)."""
    from ..flash import plan_commands

    return [" ".join(cmd) for cmd in plan_commands(target, Path(project), port)]
