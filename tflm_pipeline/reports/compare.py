"""Two runs side by side: ``compare.md`` and ``compare.html`` with the headline figures,
both quantization ledgers, timings, the ``config.json`` keys that differ, and both
training curves."""

from __future__ import annotations

import os
from pathlib import Path

from ..artifacts import read_json
from ..record import RunRecord, title
from ..runs import RunFolder
from . import document as d
from .run_report import data_facts, facts, selected_layers


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike,
                 out_path: str | os.PathLike | None = None) -> Path:
    """Write ``compare.md`` and ``compare.html`` for two runs side by side; returns the
    HTML path. ``out_path``: a folder (or None, the current one) or a file name whose
    stem both files take."""
    runs = [RunFolder(run_a), RunFolder(run_b)]
    recs = [r.record() for r in runs]
    configs = [read_json(r.file(RunFolder.CONFIG), "re-run `tflmp train`", default={})
               for r in runs]
    names = ([r.path.name for r in runs] if runs[0].path.name != runs[1].path.name
             else [str(r.path) for r in runs])
    heads = [f"A: {names[0]}", f"B: {names[1]}"]
    both = [dict(facts(rec, selected_layers(run)) + data_facts(rec))
            for run, rec in zip(runs, recs)]
    fact_rows = [[k, both[0].get(k, "—"), both[1].get(k, "—")]
                 for k in dict.fromkeys([*both[0], *both[1]])]
    stages = list(dict.fromkeys([*recs[0].timings_s, *recs[1].timings_s]))
    timing_rows = [[s, *(d.seconds(r.timings_s.get(s)) for r in recs)] for s in stages]
    differing = [[k, *(d.fmt(c.get(k)) for c in configs)]
                 for k in dict.fromkeys([*configs[0], *configs[1]])
                 if configs[0].get(k) != configs[1].get(k)]
    curves = [d.figure(f"{h}: training curves", r.file(RunFolder.TRAINING_CURVES))
              for h, r in zip(heads, runs) if r.file(RunFolder.TRAINING_CURVES).is_file()]
    sections = [
        d.section("runs", "Runs", d.table(["", *heads], fact_rows, table_id="runs-table",
                                          marked=[a != b for _, a, b in fact_rows]),
                  d.text("Rows that differ are highlighted (bold in Markdown).")),
        d.section("ledger", "Quantization ledger (test set)", _ledger(recs, heads),
                  d.text("Change vs float: positive = better than the float model.")),
        d.section("timings", "Timings", d.table(["stage", *heads], timing_rows)),
        d.section("config", "Config differences (config.json)",
                  d.table(["key", *heads], differing, table_id="config-diff-table")
                  if differing else d.text("config.json is the same in both runs.")),
        d.section("curves", "Training curves", d.figures(*curves)) if curves else None,
    ]
    doc = {"title": f"{names[0]} vs {names[1]}",
           "subtitle": [f"A: {runs[0].path.resolve()}", f"B: {runs[1].path.resolve()}"],
           "sections": [s for s in sections if s is not None]}
    html_path, md_path = _paths(out_path)
    return d.write_document(doc, md_path, html_path)[1]


def _ledger(recs: list[RunRecord], heads: list[str]) -> dict:
    keys = list(dict.fromkeys(k for r in recs for k in r.ledger.rows))
    columns, rows = ["model"], [[title(k)] for k in keys]
    for rec, head in zip(recs, heads):
        columns += [f"{head} {rec.metric}", f"{head} change vs float ({rec.ledger.unit})"]
        for key, row in zip(keys, rows):
            entry = rec.ledger.rows.get(key)
            row += [d.metric(entry.value if entry else None),
                    d.change(entry.change if entry else None)]
    return d.table(columns, rows, table_id="ledger-table")


def _paths(out_path) -> tuple[Path, Path]:
    out = Path(out_path) if out_path is not None else Path.cwd()
    if out.is_dir() or not out.suffix:
        out = out / "compare.html"
    return out.with_suffix(".html"), out.with_suffix(".md")
