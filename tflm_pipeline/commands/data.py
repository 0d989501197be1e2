"""``tflmp data check DATASET``: the data checks of every ``train``, alone: duplicates and
leaks across splits, near-duplicates, class balance, missing values, outliers and
constant channels, on the splits a run with the same options would use."""

from __future__ import annotations

from dataclasses import dataclass

from ..data import DataSpec, load_dataset
from ..data.checks import DataChecks, check_dataset
from ..record import DatasetSummary


@dataclass
class DataCheckResult:
    """The dataset's splits and what the checks found in them."""

    summary: DatasetSummary
    checks: DataChecks
    labels: list[str]

    def to_dict(self) -> dict:
        return {"dataset": self.summary.to_dict(), "labels": list(self.labels),
                "data_checks": self.checks.to_dict()}


def check(spec: DataSpec, *, near: bool = True) -> DataCheckResult:
    """Load ``spec`` as ``tflmp train`` would (splits, --duplicates, --subset) and check it;
    ``near=False`` skips the near-duplicate search."""
    spec.check()
    ds = load_dataset(spec)
    return DataCheckResult(ds.summary(), check_dataset(ds, near=near),
                           list(ds.preprocessing.labels))
