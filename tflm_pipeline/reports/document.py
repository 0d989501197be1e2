"""A small document model for reports: sections of blocks (text, list, key/value,
table, figures, cards), laid out by the jinja2 templates in ``templates/`` as Markdown
(images as files beside it) and as one self-contained HTML file (images embedded,
inline CSS, nothing fetched)."""

from __future__ import annotations

import base64
import os
import re
from functools import lru_cache
from pathlib import Path

from ..artifacts import write_text

TEMPLATE_DIR = Path(__file__).with_name("templates")
_NUMERIC = re.compile(r"[+-]?[\d,]*\.?\d+(e[+-]?\d+)?( ?(B|s|%|pp|ms))?|—")


def section(section_id: str, title: str, *blocks) -> dict:
    """A section; ``None`` blocks are left out."""
    return {"id": section_id, "title": title, "blocks": [b for b in blocks if b is not None]}


def text(body: str) -> dict:
    return {"kind": "text", "text": body}


def items(entries: list[str]) -> dict:
    return {"kind": "list", "entries": entries}


def kv(pairs, table_id: str = "") -> dict:
    """A two-column table of (label, value) pairs."""
    return {"kind": "kv", "id": table_id, "rows": [[k, fmt(v)] for k, v in pairs]}


def cards(pairs) -> dict:
    return {"kind": "cards", "rows": [[k, fmt(v)] for k, v in pairs]}


def table(columns: list[str], rows: list[list], *, table_id: str = "", caption: str = "",
          total: list | None = None, marked: list[bool] | None = None) -> dict:
    """A table of formatted cells; columns of numbers are right-aligned."""
    rows = [[fmt(c) for c in row] for row in rows]
    total = [fmt(c) for c in total] if total else None
    numeric = [bool(rows) and all(_NUMERIC.fullmatch(r[i]) for r in rows)
               and any(r[i] != "—" for r in rows) for i in range(len(columns))]
    return {"kind": "table", "id": table_id, "caption": caption, "columns": columns,
            "rows": rows, "numeric": numeric, "total": total,
            "marked": marked or [False] * len(rows)}


def figures(*entries: dict) -> dict:
    return {"kind": "figures", "figures": list(entries)}


def figure(title: str, path: Path) -> dict:
    return {"title": title, "path": path}


def fmt(value) -> str:
    """A value as table text: thousands separators, 4 significant digits, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) if value else "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items()) if value else "—"
    return str(value)


def metric(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def change(value) -> str:
    """A change vs float in points, signed (positive = better)."""
    return "—" if value is None else f"{value:+.2f}"


def nbytes(value) -> str:
    return "—" if value is None else f"{value:,} B"


def seconds(value) -> str:
    return "—" if value is None else f"{value:.2f} s"


def shape(dims) -> str:
    return "×".join(str(d) for d in dims)


def write_document(doc: dict, md_path: Path, html_path: Path) -> tuple[Path, Path]:
    """Markdown with images as paths relative to it, HTML with images embedded."""
    env = _environment()
    md_dir = md_path.parent.resolve()
    md = env.get_template("report.md.j2").render(
        doc=doc, src=lambda p: Path(os.path.relpath(Path(p).resolve(), md_dir)).as_posix())
    html = env.get_template("report.html.j2").render(doc=doc, src=_data_uri)
    return write_text(md_path, md), write_text(html_path, html)


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=jinja2.select_autoescape(["html.j2"]))
    env.filters["md"] = _md_escape
    return env


def _md_escape(value) -> str:
    """Text safe inside a Markdown table cell or paragraph."""
    return (str(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
            .replace("\n", " "))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
