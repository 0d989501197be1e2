"""The firmware targets (``firmware/targets.yaml``): template, TFLM library and its
capabilities, arena placement, and how the project is built and flashed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .errors import TflmpError


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    template: str
    boards: tuple[str, ...]
    tflm_library: str
    tree: str  # op table key (tflm_ops.json)
    arena_profiles: tuple[str, ...]  # tflm_arena.json keys
    per_channel_dense: bool
    golden_tolerance: int
    platform_include: str | None
    arena: str
    build: dict


@lru_cache(maxsize=1)
def targets() -> dict[str, Target]:
    import yaml

    from .firmware import TEMPLATE_DIR

    raw = yaml.safe_load((TEMPLATE_DIR / "targets.yaml").read_text())
    return {name: Target(name=name, title=t["title"], template=t["template"],
                         boards=tuple(t["boards"]), tflm_library=t["tflm"]["library"],
                         tree=t["tflm"]["tree"], arena_profiles=tuple(t["tflm"]["arena"]),
                         per_channel_dense=bool(t["tflm"]["per_channel_dense"]),
                         golden_tolerance=int(t["tflm"].get("golden_tolerance_lsb", 0)),
                         platform_include=t.get("platform_include"), arena=t["arena"],
                         build=t["build"])
            for name, t in raw.items()}


def get_target(name: str) -> Target:
    known = targets()
    if name not in known:
        raise TflmpError(f"unknown target '{name}': choose one of {', '.join(known)}")
    return known[name]
