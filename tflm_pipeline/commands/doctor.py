"""``tflmp doctor RUN``: what is wrong with a run and what to try, one finding per line
(:mod:`tflm_pipeline.reports.diagnose`).  Reads the run folder only; works on an
unfinished or failed run too (from its histories)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..reports.diagnose import Finding, diagnose
from ..runs import RunFolder


@dataclass
class DoctorResult:
    run_dir: Path
    findings: list[Finding] = field(default_factory=list)
    finished: bool = True  # False: no report.json yet (only the training rules ran)

    @property
    def healthy(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {"run_dir": str(self.run_dir), "healthy": self.healthy,
                "finished": self.finished, "findings": [f.to_dict() for f in self.findings]}


def doctor(run_dir: str | Path) -> DoctorResult:
    """Diagnose the run folder ``run_dir`` (TflmpError when it is not one)."""
    run = RunFolder.open(run_dir)
    return DoctorResult(run.path, diagnose(run), run.has_record)
