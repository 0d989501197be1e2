"""Renders the jinja2 templates kept as files under ``firmware/``, and formats values as
C literals."""

from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    from ..firmware import TEMPLATE_DIR

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


def render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context)


def c_float(value: float) -> str:
    """A float literal that reads back as the same float32 (9 significant digits)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} as a C float literal")
    text = f"{value:.9g}"
    if not any(c in text for c in ".e"):
        text += ".0"
    return text + "f"


def c_string(text: str) -> str:
    """A C string literal: printable ASCII kept, everything else as octal UTF-8 bytes."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F and ch != "?":  # '?' could start a trigraph
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
