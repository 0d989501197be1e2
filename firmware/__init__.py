"""The files under ``firmware/``: jinja2 templates of generated C/C++ and projects, and
the tables they and the device model read (``targets.yaml``, ``boards.yaml``,
``tflm_arena.json``, ``tflm_ops.json``, ``kernel_sizes.json``).  Installed as
``tflm_pipeline.firmware_files``; :func:`render` and :func:`table` are the only ways in.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

FILES_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def table(name: str):
    """A table shipped here (``.json`` or ``.yaml``), parsed once per process."""
    text = (FILES_DIR / name).read_text()
    if name.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def path(name: str) -> Path:
    """A file shipped here that a tool reads itself (linker script, start-up code)."""
    return FILES_DIR / name


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(FILES_DIR)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render(template: str, **context) -> str:
    """Render the jinja2 template ``template`` (a path under firmware/) with ``context``."""
    return _environment().get_template(template).render(**context)
