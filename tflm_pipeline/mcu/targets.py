"""The firmware targets (``firmware/targets.yaml``): template, the TFLM releases the
target links and its library's capabilities, arena placement, and how the project is
built and flashed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..errors import TflmpError
from ..firmware_files import table
from ..tflite.model_info import ModelInfo
from .arena import ArenaEstimate, largest
from .known_issues import REQUANTIZE, known_issues, target_platforms
from .releases import OpRegistration, get_release, registrations


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    template: str
    boards: tuple[str, ...]
    tflm_library: str
    releases: tuple[str, ...]  # TFLM releases the target may link (tflm_arena.json)
    platform_include: str | None
    arena: str  # "static", "heap" or "per-board"
    build: dict
    optimize: str  # the board build's optimisation level, e.g. "-Os"

    def registrations(self, info: ModelInfo) -> list[OpRegistration]:
        """The model's resolver calls; a one-line error for an op a release lacks."""
        return registrations(info, self.releases)

    def arena_for(self, info: ModelInfo) -> ArenaEstimate:
        """The arena the firmware is sized with: the largest over the target's releases."""
        return largest(info, self.releases)

    @property
    def platforms(self) -> list[tuple[str, str | None]]:
        """(TFLM release, chip) pairs the project may run on: the known-issues rules
        (``known_issues.yaml``) are matched against these."""
        return target_platforms(self.name, self.releases)

    @property
    def per_channel_dense(self) -> bool:
        """False when a known-issues rule re-quantizes per-channel Dense layers for one of
        the target's releases."""
        return not any(i.remedy == REQUANTIZE and any(i.affects(r, c) for r, c in self.platforms)
                       for i in known_issues().values())

    @property
    def releases_title(self) -> str:
        """The releases in words, for comments and READMEs."""
        titles = [get_release(r).title for r in self.releases]
        return (f"the larger of {' and '.join(titles)}, as the release the board links varies"
                if len(titles) > 1 else titles[0])

    @property
    def op_sources(self) -> str:
        """Where the op sets of the target's releases were read."""
        return "; ".join(dict.fromkeys(get_release(r).op_set_source for r in self.releases))


# gcc's optimisation levels a board build may use
_OPTIMIZE_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz", "-Og", "-Ofast")


def optimize_level(name: str, entry: dict) -> str:
    """A targets.yaml entry's ``optimize``: one gcc optimisation flag."""
    value = entry.get("optimize")
    if value not in _OPTIMIZE_LEVELS:
        raise TflmpError(f"targets.yaml: target '{name}': optimize must be one of "
                         f"{', '.join(_OPTIMIZE_LEVELS)} (the board build's level), "
                         f"not {value!r}")
    return value


@lru_cache(maxsize=1)
def targets() -> dict[str, Target]:
    """Every target of ``firmware/targets.yaml``, by name."""
    return {name: Target(name=name, title=t["title"], template=t["template"],
                         boards=tuple(t["boards"]), tflm_library=t["tflm"]["library"],
                         releases=tuple(t["tflm"]["releases"]),
                         platform_include=t.get("platform_include"), arena=t["arena"],
                         build=t["build"], optimize=optimize_level(name, t))
            for name, t in table("targets.yaml").items()}


def get_target(name: str) -> Target:
    known = targets()
    if name not in known:
        raise TflmpError(f"unknown target '{name}': choose one of {', '.join(known)}")
    return known[name]
