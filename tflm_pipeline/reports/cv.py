"""The report section of ``tflmp train --cv K`` (``report.json``'s ``cross_validation``):
per-fold metrics of float, PTQ int8 and QAT int8 and their mean +- std."""

from __future__ import annotations

from ..record import RunRecord, title
from . import document as d

_TITLES = {"selected_int8": "selected int8 (TFLM)"}


def _title(key: str) -> str:
    return _TITLES.get(key) or title(key)


def cv_section(rec: RunRecord) -> dict | None:
    cv = rec.cross_validation
    if not cv:
        return None
    metric, models = cv["metric"], cv["models"]
    rows = []
    for f in cv["folds"]:
        s = f["scores"]
        n = f["samples"]
        rows.append([f["fold"], f"{n['train']} / {n['val']} / {n['held_out']}",
                     *[d.metric(s.get(k, {}).get(metric)) for k in models],
                     _title(f["selected"]).split(" (")[0], d.seconds(f.get("seconds"))])
    total = ["mean ± std", "",
             *[f"{cv['mean'][k][metric]:.4f} ± {cv['std'][k][metric]:.4f}" for k in models],
             "", ""]
    how = (f"{cv['k']} folds over train+val ({cv['method']}"
           + (", no group in both a fold's training and held-out parts" if cv.get("groups")
              else "") + "); each fold trains with this run's recipe on its training part "
           "(validation carved from it for early stopping and the int8 choice"
           + ("; the data's standardization fitted on it" if cv.get("preprocessing") ==
              "per fold" else "") + ") and is scored "
           "on its held-out part; int8 models in TFLM. The test split is not used. std is the "
           "sample standard deviation over folds. The final model below trains on all "
           "training data.")
    resumed = cv.get("resumed") or []
    return d.section(
        "cross-validation", f"Cross-validation ({cv['k']} folds)",
        d.text(how),
        d.table(["fold", "train / val / held out",
                 *[f"{_title(k)} {metric}" for k in models], "selected", "time"], rows,
                table_id="cv-table", total=total),
        d.text(f"{cv['jobs']} fold(s) at a time; stage time {d.seconds(cv.get('seconds'))}, "
               f"folds' own time {d.seconds(cv.get('fold_seconds'))}"
               + (f"; folds {', '.join(map(str, resumed))} were finished before a --resume"
                  if resumed else "") + "."),
        d.items(cv["notes"]) if cv.get("notes") else None)
