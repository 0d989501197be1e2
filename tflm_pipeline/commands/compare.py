"""``tflmp compare``: two runs side by side in ``compare.md`` and ``compare.html``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..reports.compare import compare_runs


@dataclass
class CompareResult:
    html: Path
    markdown: Path

    def to_dict(self) -> dict:
        return {"html": str(self.html), "markdown": str(self.markdown)}


def compare(run_a: str | Path, run_b: str | Path, out: str | Path | None = None) -> CompareResult:
    """Compare two run folders; ``out`` is a folder or a file name (default: here)."""
    html = compare_runs(run_a, run_b, out)
    return CompareResult(html, html.with_suffix(".md"))
