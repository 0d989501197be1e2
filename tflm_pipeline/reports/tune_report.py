"""A tune folder's report: the Pareto front of the int8 metric against flash, RAM and
latency (``plots/pareto.png``) and the trials table, as ``report.md`` and a
self-contained ``report.html``."""

from __future__ import annotations

from pathlib import Path

from . import document as d
from .plots import _pyplot, _save


def plot_pareto(rows, front, metric: str, path: Path, higher_is_better: bool = True) -> Path | None:
    """One panel per cost (flash, arena, latency when known): every complete trial, the
    trials on the joint Pareto front in red, and each panel's own front (the best metric
    for at most that cost) as a step line."""
    done = [r for r in rows if r.feasible]
    if not done:
        return None
    costs = [("flash_bytes", "flash (model bytes)"), ("ram_bytes", "arena (bytes)")]
    if any(r.latency_ms is not None for r in done):
        costs.append(("latency_ms", "latency, upper band (ms)"))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(costs), figsize=(4.2 * len(costs), 3.6), squeeze=False)
    on_front = {r.number for r in front}
    sign = 1 if higher_is_better else -1
    for ax, (key, label) in zip(axes[0], costs):
        pts = sorted(((getattr(r, key), r.metric, r.number) for r in done
                      if getattr(r, key) is not None), key=lambda p: (p[0], -sign * p[1]))
        steps, best = [], None
        for x, y, _ in pts:  # the best metric reached at each cost
            if best is None or sign * y > sign * best:
                best = y
                steps.append((x, y))
        if steps:
            xs = [x for x, _ in steps] + [pts[-1][0]]
            ax.step(xs, [y for _, y in steps] + [steps[-1][1]], where="post", c="#d1495b",
                    lw=1, alpha=0.6)
        for x, y, n in pts:
            joint = n in on_front
            ax.scatter([x], [y], c="#d1495b" if joint else "#9aa5b1", s=30 if joint else 20,
                       zorder=4 if joint else 3)
            if joint:
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(3, 3),
                            fontsize=7)
        ax.set_xlabel(label)
        ax.set_ylabel(f"int8 TFLM val {metric}")
        ax.grid(alpha=0.3)
    axes[0][0].scatter([], [], c="#d1495b", label="Pareto front (trial no.)")
    axes[0][0].scatter([], [], c="#9aa5b1", label="other trials")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("tflmp tune: trials and Pareto front", fontsize=10)
    return _save(fig, path)


def render_tune_report(*, title: str, subtitle: list[str], facts: list[tuple[str, object]],
                       rows, front, best, metric: str, pareto_png: Path | None,
                       md_path: Path, html_path: Path) -> tuple[Path, Path]:
    """Summary cards, the Pareto plot and front, and every trial."""
    names = sorted({k for r in rows for k in r.params})

    def cells(r):
        return [r.number, r.state, r.metric, r.test_metric, _b(r.flash_bytes),
                _b(r.ram_bytes), r.latency_ms, *(r.params.get(n) for n in names), r.reason]

    columns = ["trial", "state", f"val {metric}", f"test {metric}", "flash", "arena",
               "latency ms", *names, "reason"]
    ordered = sorted(rows, key=lambda r: r.number)
    sections = [
        d.section("summary", "Summary", d.cards(facts)),
        d.section("pareto", "Pareto front",
                  d.figures(d.figure("metric vs flash, RAM, latency", pareto_png))
                  if pareto_png else d.text("No trial has completed yet."),
                  d.table(columns, [cells(r) for r in sorted(front, key=lambda r: r.number)],
                          table_id="front") if front else None),
        d.section("trials", "Trials",
                  d.table(columns, [cells(r) for r in ordered], table_id="trials",
                          marked=[best is not None and r.number == best.number
                                  for r in ordered])),
    ]
    doc = {"title": title, "subtitle": subtitle, "sections": sections}
    return d.write_document(doc, md_path, html_path)


def _b(value):
    return d.nbytes(value) if value is not None else None
