"""The report sections of a run's data checks (``report.json``'s ``data_checks``): the
leaks across splits, shown first, and the findings table."""

from __future__ import annotations

from ..record import RunRecord
from . import document as d


def leaks_section(rec: RunRecord) -> dict | None:
    """'Data leaks' at the top of the report, when the checks found any."""
    checks = rec.data_checks or {}
    leaks = checks.get("leaks") or []
    if not leaks:
        return None
    return d.section("leaks", "Data leaks across splits",
                     d.text("The test and validation scores below may be optimistic:"),
                     d.items(list(leaks)))


def checks_section(rec: RunRecord) -> dict | None:
    """Duplicates, near-duplicates, class balance and per-channel findings."""
    c = rec.data_checks
    if not c:
        return None
    pairs = [("exact duplicates within splits", _counts(c.get("duplicates_within"))),
             ("samples with conflicting labels", d.fmt(c.get("label_conflicts"))),
             ("exact duplicates across splits", _counts(c.get("duplicates_across"))),
             ("near-duplicates across splits", _counts(c.get("near_duplicates_across"))
              or "not searched")]
    policy = c.get("policy") or {}
    if policy.get("dropped"):
        pairs.append(("dropped (--duplicates drop)", _counts(policy["dropped"])))
    if c.get("imbalance_ratio") is not None:
        pairs.append(("train imbalance (largest / smallest class)",
                      f"{c['imbalance_ratio']:g}x"))
    for key, label in (("missing", "missing values"), ("outliers", "outliers (robust z)")):
        found = {k: v for k, v in (c.get(key) or {}).items() if v}
        if c.get("channels"):
            pairs.append((label, _counts(found) or "none"))
    if c.get("channels"):
        pairs.append(("constant channels", ", ".join(c.get("constant_channels") or [])
                      or "none"))
    method = c.get("method") or {}
    return d.section("data-checks", "Data checks", d.kv(pairs, "data-checks-table"),
                     d.items([f"{k}: {v}" for k, v in method.items() if v]))


def _counts(values: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (values or {}).items())
