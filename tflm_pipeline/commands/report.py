"""``tflmp report``: regenerate a run's ``report.md`` and ``report.html`` from its
``report.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..reports.run_report import render_reports


@dataclass
class ReportResult:
    markdown: Path
    html: Path

    def to_dict(self) -> dict:
        return {"markdown": str(self.markdown), "html": str(self.html)}


def report(run_dir: str | Path) -> ReportResult:
    """Render the reports of the run folder ``run_dir``."""
    return ReportResult(*render_reports(run_dir))
