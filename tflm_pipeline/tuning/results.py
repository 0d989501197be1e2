"""A study's trials as rows: the trials table (``trials.csv``), the Pareto front of the
metric against flash, RAM and latency, and the best feasible trial."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import write_text

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
          "WAITING": "waiting"}


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, pruned, failed, interrupted (queued again), running, waiting
    metric: float | None  # the selected int8 model's validation metric in TFLM
    test_metric: float | None
    flash_bytes: int | None
    ram_bytes: int | None
    latency_ms: float | None
    reason: str  # why it was pruned or failed ("" when complete)
    params: dict = field(default_factory=dict)
    run_dir: str | None = None
    seconds: float | None = None
    worker: str = ""

    @property
    def feasible(self) -> bool:
        return self.state == "complete" and self.metric is not None

    def to_dict(self) -> dict:
        return dict(vars(self))


def trial_row(t) -> TrialRow:
    """A row from an Optuna ``FrozenTrial`` and the user attrs the tuner set."""
    a = t.user_attrs
    state = STATES.get(t.state.name, t.state.name.lower())
    reason = a.get("reason", "")
    if state == "failed" and not reason:  # killed or Ctrl-C: its parameters run again
        state, reason = "interrupted", "interrupted; its parameters were queued again"
    seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
               if t.datetime_complete and t.datetime_start else None)
    return TrialRow(t.number, state, t.value if t.state.name == "COMPLETE" else None,
                    a.get("test_metric"), a.get("flash_bytes"), a.get("ram_bytes"),
                    a.get("latency_ms"), reason, dict(t.params), a.get("run_dir"), seconds,
                    a.get("worker", ""))


def pareto_front(rows: list[TrialRow], higher_is_better: bool = True) -> list[TrialRow]:
    """Feasible trials no other feasible trial beats on the metric and on every cost
    (flash, RAM, latency when known) at once."""
    done = [r for r in rows if r.feasible]
    sign = 1 if higher_is_better else -1

    def costs(r):
        return (-sign * r.metric, r.flash_bytes or 0, r.ram_bytes or 0, r.latency_ms or 0.0)

    def dominates(a, b):
        ca, cb = costs(a), costs(b)
        return all(x <= y for x, y in zip(ca, cb)) and ca != cb

    return [r for r in done if not any(dominates(o, r) for o in done)]


def best_trial(rows: list[TrialRow], higher_is_better: bool = True) -> TrialRow | None:
    """The feasible trial with the best metric; ties go to the smaller flash."""
    done = [r for r in rows if r.feasible]
    if not done:
        return None
    sign = 1 if higher_is_better else -1
    return min(done, key=lambda r: (-sign * r.metric, r.flash_bytes or 0, r.number))


def write_trials_csv(rows: list[TrialRow], path: Path) -> Path:
    """One line per trial: number, state, metric, costs, reason, then every parameter."""
    names = sorted({k for r in rows for k in r.params})
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["number", "state", "val_metric", "test_metric", "flash_bytes", "ram_bytes",
                "latency_ms", "seconds", "reason", *names, "run_dir", "worker"])
    for r in sorted(rows, key=lambda r: r.number):
        w.writerow([r.number, r.state, _cell(r.metric), _cell(r.test_metric),
                    _cell(r.flash_bytes), _cell(r.ram_bytes), _cell(r.latency_ms),
                    _cell(r.seconds), r.reason, *(_cell(r.params.get(n)) for n in names),
                    r.run_dir or "", r.worker])
    return write_text(path, out.getvalue())


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return str(v)
