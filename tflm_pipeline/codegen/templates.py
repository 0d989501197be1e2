"""Renders the jinja2 templates kept as files under ``firmware/``."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    from ..firmware import TEMPLATE_DIR

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context)
