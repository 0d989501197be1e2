"""Templates for generated C/C++ (jinja2 ``.j2`` files), installed as package data."""

from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent
