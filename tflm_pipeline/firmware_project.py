"""A firmware project folder ``tflmp firmware`` wrote: its ``tflmp_project.json``.

Codegen writes the file; ``tflmp flash``, the build check (``firmware --check``) and the
run report read it back through :func:`read_project`, so the name of the file and its
layout live here only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import read_json, write_json
from .errors import TflmpError

META_FILE = "tflmp_project.json"


@dataclass(frozen=True)
class ProjectMeta:
    tflmp_version: str
    target: str
    name: str  # the model's C identifier
    sketch: str | None  # the Arduino sketch name (its .ino), None for other targets
    model_sha256: str
    arena: dict  # mcu.arena.ArenaEstimate.to_dict() plus "tree": the releases in words
    golden: dict  # {"count": n, "source": where the inputs came from}
    notes: list[str] = field(default_factory=list)

    @property
    def arena_bytes(self) -> int:
        return int(self.arena["arena_bytes"])

    def to_dict(self) -> dict:
        return {"tflmp_version": self.tflmp_version, "target": self.target, "name": self.name,
                "sketch": self.sketch, "model_sha256": self.model_sha256, "arena": self.arena,
                "golden": self.golden, "notes": list(self.notes)}


def write_project(project_dir: str | os.PathLike, meta: ProjectMeta) -> Path:
    return write_json(Path(project_dir) / META_FILE, meta.to_dict())


def read_project(project_dir: str | os.PathLike) -> ProjectMeta:
    """The metadata of a project folder; a one-line error for anything else."""
    project_dir = Path(project_dir)
    fix = f"regenerate it with 'tflmp firmware ... --out {project_dir}'"
    data = read_json(project_dir / META_FILE, fix)
    if data is None:
        raise TflmpError(f"{project_dir} is not a project written by 'tflmp firmware' "
                         f"(no {META_FILE})")
    try:
        return ProjectMeta(data["tflmp_version"], data["target"], data["name"],
                           data.get("sketch"), data.get("model_sha256", ""), data["arena"],
                           data.get("golden", {}), list(data.get("notes", [])))
    except (KeyError, TypeError) as e:
        raise TflmpError(f"{project_dir / META_FILE} lacks {e}; {fix}") from None
