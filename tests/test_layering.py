"""The package's floor plan, read from its imports (module level and inside functions):
no cycles, dependencies only pointing down, the flatbuffer wing free of TensorFlow, and
no TensorFlow at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "tflm_pipeline"
# what tflmp installs from outside tflm_pipeline/ (setup.cfg package_dir): leaves
MAPPED = {"tflm_pipeline.models", "tflm_pipeline.firmware_files"}
# the ground floor: these import nothing of tflmp but each other
BOTTOM = {"errors", "artifacts", "progress", "tf_env", "config", "tasks", "preprocessing",
          "record", "runs", "firmware_project"}
WINGS = {"data", "training", "quantize", "tflite", "tflm", "mcu", "codegen", "reports", "cv",
         "tuning"}
TOP = {"cli", "console", "commands", "__init__"}
# (importer, imported) pairs of units that must never appear
FORBIDDEN = [*((w, t) for w in WINGS | BOTTOM for t in ("commands", "cli", "console")),
             *(("codegen", w) for w in ("quantize", "training", "tflm", "data")),
             ("mcu", "codegen"), ("reports", "codegen"), ("tflite", "tf_env"),
             *(("tflite", w) for w in WINGS - {"tflite"})]
TENSORFLOW = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """The package modules and the third-party top-level packages ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inner, outer = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
            inner.add(base)
            inner.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            outer.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            outer.update(a.name.split(".")[0] for a in node.names)
    return inner, outer


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


@pytest.fixture(scope="module")
def graph():
    mods = _modules()
    known = set(mods) | MAPPED
    edges, third_party = defaultdict(set), {}
    for name, path in mods.items():
        inner, outer = _imports(name, path)
        third_party[name] = outer
        for target in inner:
            if target in known and target != name and not name.startswith(target + "."):
                edges[name].add(target)
    return mods, edges, third_party


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules(graph):
    _, edges, _ = graph
    assert _cycles(edges) == []


def test_no_cycles_between_wings_and_floors(graph):
    _, edges, _ = graph
    units = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if _unit(a) != _unit(b):
                units[_unit(a)].add(_unit(b))
    assert _cycles(units) == []


def test_dependencies_point_down(graph):
    mods, edges, _ = graph
    units = {_unit(m) for m in mods} - {"models", "firmware_files"}
    assert units <= BOTTOM | WINGS | TOP | {"testing"}, units - BOTTOM - WINGS - TOP
    broken = [(a, b) for a, targets in edges.items() for b in targets
              if (_unit(a), _unit(b)) in FORBIDDEN
              or (_unit(a) in BOTTOM and _unit(b) not in BOTTOM | {"__init__"})]
    assert broken == []


def test_the_flatbuffer_wing_never_imports_tensorflow(graph):
    mods, edges, third_party = graph
    tflite = [m for m in mods if _unit(m) == "tflite"]
    assert tflite and not [m for m in tflite if third_party[m] & set(TENSORFLOW)]
    # nor does anything it imports
    seen, todo = set(), list(tflite)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(edges.get(m, ()))
    assert not [m for m in seen if third_party.get(m, set()) & set(TENSORFLOW)]


def test_importing_the_package_the_cli_and_the_flatbuffer_wing_loads_no_tensorflow():
    code = ("import sys, tflm_pipeline, tflm_pipeline.cli, tflm_pipeline.tflite.layers, "
            "tflm_pipeline.tflite.memory_plan, tflm_pipeline.tflite.tensor_names, "
            "tflm_pipeline.mcu.device_profile, tflm_pipeline.codegen.project, "
            "tflm_pipeline.tflm.harness\n"
            "from tflm_pipeline import train, convert, verify, profile, firmware\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{TENSORFLOW!r}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]"
